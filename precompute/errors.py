"""The one exception type for user-facing input problems: the CLI prints its one-line message, exits 2.

Its definition lives in precompute/rundir/errors.py (rundir imports nothing above itself)."""
from precompute.rundir.errors import UserInputError

__all__ = ["UserInputError"]
