"""The one exception type for user-facing input problems: the CLI prints its one-line message, exits 2.

Defined in the run-directory layer (the lowest floor, which raises it too) and re-exported as
precompute.errors.UserInputError, the name the rest of the code uses."""


class UserInputError(Exception):
    """Bad input named in one line (file, line, field); never shown with a traceback."""
