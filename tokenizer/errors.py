"""The one small exception hierarchy of speechtok.

Every error raised at a boundary (audio bytes, manifests, model directories, configs) says what
was expected and what was found. ``serving/`` maps these classes to gRPC status codes.
"""


class SpeechtokError(Exception):
    """Base class of all errors speechtok raises on purpose."""


class InvalidInputError(SpeechtokError, ValueError):
    """The caller's input is malformed (maps to ``INVALID_ARGUMENT``)."""


class AudioError(InvalidInputError):
    """Audio could not be decoded or failed validation."""


class AudioTooLongError(AudioError):
    """Audio is longer than the configured maximum (maps to ``RESOURCE_EXHAUSTED``)."""


class CorpusError(InvalidInputError):
    """A manifest, alignment file or corpus directory is malformed."""
