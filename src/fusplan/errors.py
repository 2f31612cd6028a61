"""Exceptions fusplan raises for input it cannot use."""


class FusplanInputError(ValueError):
    """Bad user input: a file, protocol key or parameter that cannot be used.

    The message is one line that names the file or key and the problem; the CLI
    prints it and exits with status 2. One line is enforced here: newlines, other
    control characters and undecodable file-name bytes (lone surrogates) in the
    message are written as backslash escapes, so a key or file name typed with a
    newline cannot split the line, and the message can always be printed.
    """

    def __init__(self, message: object = "", *args: object):
        super().__init__(one_line(str(message)), *args)


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name when it has none), for one-line errors."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def one_line(text: str) -> str:
    """``text`` with every non-printable character (newline, tab, NUL, surrogate) escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)
