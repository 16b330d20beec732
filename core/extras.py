"""Commands that need an optional part of the package say so, instead of failing on an import.

`pip install inspector` is the daemon (what an Atlas box runs, on Python 3.9 there); training, evaluation and
export need the `[train]` / `[export]` extras, whose MindSpore 2.10 has no build for Python 3.9.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Sequence, Tuple

from core.errors import ConfigError

TRAINING_PYTHON = (3, 10)  # MindSpore 2.10's oldest build; tested here on 3.11


def require_extra(command: str, extra: str, modules: Sequence[str], python: Tuple[int, int] = (3, 9)) -> None:
    """Raise a ConfigError naming what to install when `command` cannot run in this environment."""
    running = sys.version_info[:2]
    if running < python:
        raise ConfigError(f"inspector {command} needs Python {python[0]}.{python[1]} or newer (this is "
                          f"{running[0]}.{running[1]}): MindSpore 2.10 has no build for it. Train and export on a "
                          f"server with Python 3.11; the daemon side (run, validate, render, doctor, health, plan) "
                          f"runs here")
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"inspector {command} needs {', '.join(missing)}, which is not installed: "
                          f"pip install 'inspector[{extra}]'")
