"""Errors of the figure step."""

from __future__ import annotations


class FigureError(ValueError):
    """A table that cannot be drawn; the message names the file, the problem and the fix."""


class NothingToDraw(FigureError):
    """The table exists but holds nothing this figure can show; the figure is skipped."""
