"""Disk quotas of the files the daemon keeps (event snapshots, samples): the oldest go first."""

from __future__ import annotations

import pathlib
import shutil
from typing import Iterable, List, Optional


def free_megabytes(directory: pathlib.Path) -> float:
    return shutil.disk_usage(directory).free / 2**20


def delete_oldest(groups: Iterable[List[pathlib.Path]], *, max_count: Optional[int], max_megabytes: float,
                  oldest_allowed: float, free_mb: float, min_free_megabytes: float) -> int:
    """Delete whole groups of files (a picture and its sidecar go together), oldest first by their first file's
    mtime, while any limit is exceeded: more than max_count groups, more than max_megabytes in all, older than
    oldest_allowed (a time.time()), or less than min_free_megabytes free. Returns how many groups went."""
    found = []
    for group in groups:
        try:
            stats = [path.stat() for path in group]
        except FileNotFoundError:
            continue
        found.append((stats[0].st_mtime, sum(s.st_size for s in stats), group))
    found.sort(key=lambda item: item[0])
    total = sum(size for _, size, _ in found)
    max_bytes = max_megabytes * 2**20
    deleted = 0
    for mtime, size, group in found:
        over = ((max_count is not None and len(found) - deleted > max_count) or total > max_bytes
                or mtime < oldest_allowed or free_mb < min_free_megabytes)
        if not over:
            break
        for path in group:
            path.unlink(missing_ok=True)
        total -= size
        free_mb += size / 2**20  # each deletion frees its own size: the disk is asked once
        deleted += 1
    return deleted
