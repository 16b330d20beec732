"""Errors raised by the model layer: each names the file, layer or tensor it is about."""

from core.errors import UserError


class ModelError(UserError):
    """Base of every error raised by models/."""


class CfgError(ModelError):
    """A Darknet cfg file that cannot be parsed or describes an unsupported network."""


class WeightsError(ModelError):
    """A weights file or checkpoint that does not match the network it is loaded into."""


class SpecError(ModelError):
    """A ModelSpec / manifest.json that is malformed or disagrees with what it describes."""
