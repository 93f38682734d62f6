"""Compression variants: importing this package registers every variant."""

# Importing the family modules registers their variants.
from bench.compress import prune, quantize, structured  # noqa: F401  (registers the variants)
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
