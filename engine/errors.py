"""The one user-facing error type of the engine."""


class EngineInputError(ValueError):
    """A one-line message naming the input that is wrong (precompute maps it to exit code 2)."""
