"""The daemon's SQLite files: WAL, so a status reader's open read never holds up the writer."""

from __future__ import annotations

import contextlib

import pytest

from pipeline.outputs.sqlite import open_wal

pytestmark = pytest.mark.unit  # no MindSpore, no daemon run, no training (README: the unit tier)


def test_a_writer_commits_while_a_reader_reads(tmp_path):
    path = str(tmp_path / "s.sqlite")
    with contextlib.closing(open_wal(path, isolation_level=None)) as writer, \
            contextlib.closing(open_wal(path, isolation_level=None)) as reader:
        assert writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert writer.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        writer.execute("CREATE TABLE t (n INTEGER)")
        writer.execute("INSERT INTO t VALUES (1)")
        writer.execute("PRAGMA busy_timeout = 100")  # fail in 0.1 s, not 30, if the reader held it up
        reader.execute("BEGIN")
        assert reader.execute("SELECT n FROM t").fetchall() == [(1,)]
        # With a rollback journal this commit would wait for the reader's lock and then fail.
        writer.execute("INSERT INTO t VALUES (2)")
        assert reader.execute("SELECT n FROM t").fetchall() == [(1,)]  # the reader's snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT n FROM t").fetchall() == [(1,), (2,)]
