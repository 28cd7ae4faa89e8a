"""The one exception type the library raises for user-facing problems.

The CLI catches it at the boundary, prints its message as one line and exits with `code`
(no traceback). Anything else escaping is a bug and is shown in full.
"""


class W2VError(Exception):
    """A problem the user can fix: bad input, bad flag, unreadable file. The message says what to do."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class UsageError(W2VError):
    """A bad flag or config value, detected before any work starts (exit code 2, like Click)."""

    def __init__(self, message: str):
        super().__init__(message, code=2)
