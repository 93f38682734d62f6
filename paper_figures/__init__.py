"""Paper figures drawn from the tables of ``cxrbench analyze`` (plotting only, no statistics)."""

from paper_figures.make import make_all

__all__ = ["make_all"]
