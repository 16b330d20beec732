"""Errors every layer may raise."""


class ConfigError(Exception):
    """A config file (or rendered graph) that cannot be used; the message names file, key and reason."""
