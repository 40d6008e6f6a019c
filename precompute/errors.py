"""The one exception type for user-facing input problems: the CLI prints its one-line message, exits 2."""


class UserInputError(Exception):
    """Bad input named in one line (file, line, field); never shown with a traceback."""
