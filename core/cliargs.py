"""Argument types for the command line: every number is checked where it is typed, with the value and the rule
in the error (argparse prints `inspector plan: error: argument --fps: ...` and exits 2), never a traceback or a
plan for "-50 cameras"."""

from __future__ import annotations

import argparse
import math
from typing import Callable, Tuple


def _number(kind: Callable, value: str, what: str):
    try:
        number = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected {what}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{value!r}: expected {what}")
    return number


def positive_int(value: str) -> int:
    number = _number(int, value, "an integer >= 1")
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: expected an integer >= 1")
    return number


def non_negative_int(value: str) -> int:
    number = _number(int, value, "an integer >= 0")
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected an integer >= 0")
    return number


def positive_float(value: str) -> float:
    number = _number(float, value, "a number > 0")
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number > 0")
    return number


def non_negative_float(value: str) -> float:
    number = _number(float, value, "a number >= 0")
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number >= 0")
    return number


def fraction(value: str) -> float:
    """A score threshold: 0..1."""
    number = _number(float, value, "a number from 0 to 1")
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number from 0 to 1")
    return number


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
