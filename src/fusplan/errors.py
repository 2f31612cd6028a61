"""Exceptions fusplan raises for input it cannot use."""


class FusplanInputError(ValueError):
    """Bad user input: a file, protocol key or parameter that cannot be used.

    The message is one line that names the file or key and the problem; the CLI
    prints it and exits with status 2.
    """
