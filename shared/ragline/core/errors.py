"""Every ragline exception, each with a stable `code`; HTTP statuses live in
`ragline.api.replies`."""

from __future__ import annotations

from typing import Any


class RaglineError(Exception):
    """Base of all ragline errors."""

    code = "internal"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigurationError(RaglineError):
    code = "configuration"


class DatabaseError(RaglineError):
    code = "database_unavailable"


class TenancyError(RaglineError):
    """A query tried to leave (or never entered) its org."""

    code = "tenancy"


class ValidationError(RaglineError):
    code = "invalid_request"


class MalformedBodyError(ValidationError):
    code = "malformed_body"


class MalformedHeaderError(MalformedBodyError):
    """A header that is repeated, or not in the form it must have."""

    code = "malformed_header"


class PayloadTooLargeError(ValidationError):
    code = "payload_too_large"


class DocumentTooLargeError(PayloadTooLargeError):
    """A document's text is over its org's per-document size limit."""

    code = "document_too_large"


class UnsupportedMediaTypeError(ValidationError):
    code = "unsupported_media_type"


class MalformedEventError(MalformedBodyError):
    """A storage event (CloudEvent, S3 notification) that can never be processed: it is
    logged and acknowledged, not retried."""

    code = "malformed_event"


class UnauthenticatedError(RaglineError):
    code = "unauthenticated"


class ForbiddenError(RaglineError):
    code = "forbidden"


class NotFoundError(RaglineError):
    code = "not_found"


class ObjectGoneError(NotFoundError):
    """The stored object (that generation or version) no longer exists: permanent, unlike a
    TransientError from an unreachable store."""

    code = "object_gone"


class MethodNotAllowedError(RaglineError):
    code = "method_not_allowed"


class ConflictError(RaglineError):
    code = "conflict"


class EmbeddingSpaceError(ConflictError):
    """An embedding space change refused: a build already running, a shadow incomplete at
    cutover, nothing to roll back to (issue 17)."""

    code = "embedding_space_conflict"


class IdempotencyInProgressError(ConflictError):
    code = "idempotency_in_progress"


class IdempotencyMismatchError(RaglineError):
    code = "idempotency_key_mismatch"


class RateLimitedError(RaglineError):
    code = "rate_limited"


class OverloadedError(RateLimitedError):
    """This instance already runs as many requests as it may (`guardrails.admission`)."""

    code = "overloaded"


class TooManyChunksError(RaglineError):
    """A document splits into more chunks than its org may have per document."""

    code = "too_many_chunks"


class EmbeddingError(RaglineError):
    code = "embedding_failed"


class RerankError(RaglineError):
    code = "rerank_failed"


class QueueError(RaglineError):
    code = "queue_unavailable"


class StorageError(RaglineError):
    """Cloud Storage or S3 refused a request for good (permissions, a bad request)."""

    code = "storage_failed"


class TransientError(RaglineError):
    """A stage failed in a way worth retrying (the queue will redeliver)."""

    code = "transient"


class ExtractionError(RaglineError):
    """A file could not be turned into text (`ragline.ingest.extract`).

    `reason` is a stable code (`empty`, `unsupported_type`, `type_mismatch`, `encrypted`,
    `corrupt`, `no_text`, `too_large`, `timeout`; see docs/documents.md): the failure is
    permanent for these bytes, so a pipeline stage records it and does not retry."""

    code = "extraction_failed"

    def __init__(self, reason: str, message: str = "", *, details: Any = None) -> None:
        super().__init__(message or reason, details=details)
        self.reason = reason
