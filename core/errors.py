"""Errors every layer may raise."""


class UserError(Exception):
    """Base of every error that is the user's to fix: a file, key, model, device or output that cannot be used as
    given. The message names it and says why; the command line prints it as one line and exits 1 (anything else
    is a bug and keeps its traceback)."""


class ConfigError(UserError):
    """A config file (or rendered graph) that cannot be used; the message names file, key and reason."""
