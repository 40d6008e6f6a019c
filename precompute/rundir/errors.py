"""The one exception type for user-facing input problems: the CLI prints its one-line message, exits 2.

Defined in the run-directory layer (the lowest floor, which raises it too); every layer above imports it from here."""


class UserInputError(Exception):
    """Bad input named in one line (file, line, field); never shown with a traceback."""
