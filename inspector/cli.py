"""The `inspector` command line: one entry point, subcommands registered by each package.

The top layer: it alone imports every package. Each package's `cli.py` (or `commands.py`) adds its
subcommands and imports its heavy dependencies (MindSpore, ONNX Runtime, PyAV) only inside the command it
runs, so `inspector --help` is instant and the daemon's commands run without the training stack installed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys

from core.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from deploy import cli as deploy_cli
    from models import cli as models_cli
    from pipeline import commands as pipeline_commands
    from pipeline.stage2 import deployed_models
    from train import cli as train_cli

    parser = argparse.ArgumentParser(prog="inspector", description="Edge inspection pipeline for Ascend 310.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    pipeline_commands.register(commands)
    train_cli.register(commands, deployed_models=deployed_models)
    models_cli.register(commands)
    deploy_cli.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before anything imports MindSpore: quiet its C++ warnings (GLOG_v=3: errors only) unless the user chose.
    os.environ.setdefault("GLOG_v", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"inspector {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    # A user's mistake (a file that is not there, not text, not writable, out of memory for the size asked)
    # is one line naming the file, never a traceback; -v adds the traceback for a bug report.
    except (OSError, UnicodeDecodeError, sqlite3.Error, MemoryError) as exc:
        print(f"inspector {args.command}: error: {describe_error(exc)}", file=sys.stderr)
        logging.getLogger(__name__).debug("details", exc_info=exc)
        return 1


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
        return f"{where + ': ' if where else ''}{exc.strerror or exc}"
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, sqlite3.Error):
        return f"database: {exc}"
    return "out of memory (a size or batch too large for this machine?)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
