"""When a failure that repeats is worth a log line: the 1st, 10th and 100th, then every 1000th, so that a
camera or a disk failing all night fills the journal with a few lines that still say how many."""

from __future__ import annotations


def worth_saying(count: int) -> bool:
    """True for the count-th occurrence that gets a line."""
    return count in (1, 10, 100) or count % 1000 == 0


def passed_a_mark(before: int, after: int) -> bool:
    """True when a count that grew from `before` to `after` at once passed one of those occurrences."""
    return any(before < mark <= after for mark in (1, 10, 100)) or after // 1000 != before // 1000
