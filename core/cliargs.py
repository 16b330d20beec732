"""Argument types for the command line: every number is checked where it is typed, with the value and the rule
in the error (argparse prints `inspector plan: error: argument --fps: ...` and exits 2), never a traceback or a
plan for "-50 cameras"."""

from __future__ import annotations

import argparse
import math
from typing import Callable, Tuple


def _bounded(kind: Callable, what: str, low: float, high: float = math.inf, low_inclusive: bool = True):
    """An argparse type: `kind` of the text, finite, from low (excluded unless low_inclusive) to high; the
    error says `what`."""
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r}: expected {what}") from None
        above = number >= low if low_inclusive else number > low
        if not (math.isfinite(number) and above and number <= high):
            raise argparse.ArgumentTypeError(f"{value!r}: expected {what}")
        return number
    parse.__name__ = what  # argparse names the type in some messages
    return parse


positive_int = _bounded(int, "an integer >= 1", 1)
non_negative_int = _bounded(int, "an integer >= 0", 0)
positive_float = _bounded(float, "a number > 0", 0, low_inclusive=False)
non_negative_float = _bounded(float, "a number >= 0", 0)
fraction = _bounded(float, "a number from 0 to 1", 0, 1)  # a score threshold


def frame_size(value: str) -> Tuple[int, int]:
    """WxH, both >= 1 (a camera's picture)."""
    parts = value.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected WxH, e.g. 1920x1080") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: width and height must be >= 1")
    return width, height
