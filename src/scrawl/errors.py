"""Exceptions Scrawl raises for user mistakes and bad input.

Every error a user can cause derives from ScrawlError; the CLI prints its message (no traceback) and
exits with status 2, and the web app turns it into a 4xx JSON error.
"""


class ScrawlError(Exception):
    """Base class: a problem the user can fix, with a message that says what and how."""


class DataError(ScrawlError):
    """A dataset file is missing, truncated, corrupted or has the wrong checksum."""


class DownloadError(DataError):
    """A dataset file could not be downloaded from any mirror."""


class CheckpointError(ScrawlError):
    """A checkpoint is missing, truncated, corrupted, foreign or from a newer Scrawl."""


class ImageError(ScrawlError):
    """An input image cannot be decoded (not an image, truncated, too large)."""


class EmptyImageError(ImageError):
    """An image holds no ink: there is nothing to read."""


class TrainingInterrupted(ScrawlError):
    """Raised after Ctrl-C / SIGTERM once a resumable `last.pt` has been written (CLI exit status 130)."""


class EvaluationInputError(ScrawlError, ValueError):
    """Arrays given to the evaluation functions do not fit together (shapes, ranges, names)."""
