"""Config files: YAML read as YAML 1.2 floats, a strict pydantic base, validation errors that name file and key."""

from __future__ import annotations

import json
import pathlib
import re

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import ConfigError
from core.urls import redact_url


class Strict(BaseModel):
    # strict: `max_batch: true` or `loop: "yes"` are errors, not 1 and True (an int is still a float).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def format_validation_errors(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "<top>"
        if item["type"] == "missing":  # its input is the enclosing mapping: no value of the key to show
            lines.append(f"{source}: {path}: {item['msg']}")
            continue
        value = item.get("input")
        shown = redact_url(value) if isinstance(value, str) else value
        if isinstance(shown, (dict, list)):
            shown = type(shown).__name__
        lines.append(f"{source}: {path}: {item['msg']} (value: {shown!r})")
    return "\n".join(lines)


class _Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `1e-3` (no dot) is a string; the strict config would then refuse it as
    "not a number". Floats are read as YAML 1.2 (and JSON) write them."""


_Loader.yaml_implicit_resolvers = {key: [(tag, regexp) for tag, regexp in resolvers
                                         if tag != "tag:yaml.org,2002:float"]
                                   for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def read_text(path) -> str:
    """A config file's text; unreadable and non-UTF-8 files become ConfigErrors naming the file."""
    path = pathlib.Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc


def read_yaml(path) -> object:
    """A YAML file's content; syntax errors too become ConfigErrors naming the file."""
    text = read_text(path)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def read_json(path) -> object:
    """A JSON file's content (a stream graph); syntax errors become ConfigErrors naming the file."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc


