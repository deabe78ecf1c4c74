"""Exception hierarchy. Every user-facing failure is an ``MRTError`` with a one-line message."""


class MRTError(Exception):
    """Base class of all errors the CLI reports as a one-line message and a non-zero exit."""

    exit_code = 1


class ImageError(MRTError):
    """The input is not a readable/supported image (or is too large)."""

    exit_code = 3


class BitstreamError(MRTError):
    """A compressed file is empty, truncated, corrupt, of an unknown version or fails its checksum."""

    exit_code = 4


class ModelError(MRTError):
    """A model name/path/id cannot be resolved or a model file is invalid."""

    exit_code = 5


class ConfigError(MRTError):
    """A configuration file or override is invalid."""

    exit_code = 2
