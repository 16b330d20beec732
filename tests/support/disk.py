"""A real small file system to fill (tmpfs, mounted by root), for disk-full tests."""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest


@pytest.fixture()
def small_disk(tmp_path):
    """A 32 MB tmpfs under tmp_path (above the 16 MB validate asks for); skips unless root can mount it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: pathlib.Path) -> pathlib.Path:
    """Write a file into `directory` until its file system is full; remove it to give the space back."""
    filler = directory / "filler"
    # Unbuffered: a buffered file keeps the tail of a partial write and raises ENOSPC again when it is closed.
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
    return filler
