"""Compression variants: importing this package registers every variant."""

from bench.compress._registry import (
    CompressContext,
    apply_chain,
    get_variant,
    list_variants,
    register_variant,
    validate_chain,
    variant_id,
)

__all__ = [
    "CompressContext",
    "apply_chain",
    "get_variant",
    "list_variants",
    "register_variant",
    "validate_chain",
    "variant_id",
]
