"""Every exception the service raises on purpose, under one base.

``ServiceError`` is a failure the service knows about and reports in one line. Those that derive
from ``RetryableError`` are infrastructure trouble that may pass (Totara busy or unreachable, a
full disk): the worker retries them with backoff, and dead-letters every other one at once.
Classes that callers already catch as a built-in (``except ValueError``, ``except OSError``) keep
that built-in as a second base.

Left out on purpose: the CSV reader's ``Fallback`` and ``RowProblem`` (recommender.ingest.csvfile)
and the worker's ``_StopRequested``. They are control flow inside one module, caught a few lines
from where they are raised, never a failure that reaches a caller.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A failure the service expects and reports; the message is the whole explanation."""

    # How the error is named where it is reported (a run's message, a dead letter's reason):
    # a subclass that only refines retrying keeps the name operators already know.
    reported_as: str | None = None


def describe(exc: BaseException) -> str:
    """``Name: message`` for logs, run outcomes and dead-letter reasons."""
    name = getattr(exc, "reported_as", None) or type(exc).__name__
    return f"{name}: {exc}"


# A value quoted in a message is cut to this many characters: one long field of an export
# must not turn a one-line message into megabytes in logs, Redis and train_summary.log.
QUOTE_CHARS = 80


def capped(value: object, limit: int = QUOTE_CHARS) -> str:
    """``value`` as text, or its first ``limit`` characters and its length when it is longer."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """``'value'``, or its first ``limit`` characters quoted and its length when it is longer."""
    text = str(value)
    if len(text) <= limit:
        return f"'{text}'"
    return f"'{text[:limit]}…' ({len(text):,} characters)"


class RetryableError(ServiceError):
    """Infrastructure trouble that may pass: trying the same work again later can succeed."""


# -- settings -------------------------------------------------------------------------------


class ConfigError(ServiceError, ValueError):
    """A missing or invalid configuration value; the message is a single line."""


# -- published state ------------------------------------------------------------------------


class StaleVersionError(ServiceError, RuntimeError):
    """The pointer was not moved: a newer version is current, or this one was collected.

    Not retryable: a newer model is already served, which another attempt cannot change."""


class LockLostError(RetryableError):
    """The pointer was not moved: the tenant's lock expired or was taken during the run.

    Retryable: nothing was published, and the next attempt takes the lock again."""


class CorruptListError(ServiceError, ValueError):
    """A packed list value (published.packing) that does not decode: empty, truncated, counts
    that do not match its length, an unknown format. Readers answer without it (api.lists); a
    ValueError for callers that catch that."""


# -- training: ingest, model store ----------------------------------------------------------


class ExportError(ServiceError):
    """A malformed export file; the message names the file, the line and the problem."""


class BadFile(ServiceError):
    """A malformed CSV file; the message names the file, the line and the problem."""


class DownloadError(ServiceError):
    """The export could not be fetched, and asking again will not help (set-up, refused file)."""


class DownloadTooLarge(DownloadError):
    """An export file over ML_DOWNLOAD_MAX_BYTES; not retried: it is as large the next time."""


class TransientDownloadError(DownloadError, RetryableError):
    """The export could not be fetched now (Totara busy, slow or unreachable); later may work."""

    reported_as = "DownloadError"


class ModelStoreError(RetryableError, OSError):
    """ML_MODELS_DIR cannot take the model (full, read-only, missing permissions)."""


class FitInterrupted(ServiceError):
    """The fit stopped at an epoch boundary because its worker is stopping; what it had done is
    checkpointed (recommender.model.checkpoint). Neither retried nor dead-lettered: the worker
    leaves the event unacked, and the run that gets it again resumes from the checkpoint."""


# -- consumer and API input -----------------------------------------------------------------


class InvalidEvent(ServiceError, ValueError):
    """A message that can never be processed; the text is the reason, on one line."""


class BadRequest(ServiceError):
    """A malformed query; ``message`` goes into the failure envelope."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
