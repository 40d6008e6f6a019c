"""The one user-facing error type of the engine."""


class EngineInputError(ValueError):
    """A one-line message naming the input that is wrong (precompute maps it to exit code 2); `field`, when known,
    names the input record's field at fault (e.g. a query's `completion` or `answer`), so that the caller can point
    at file, line and field without reading the message."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
