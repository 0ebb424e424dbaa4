"""The one exception type for mistakes a user can make (bad file, unknown model, ...).

The CLI turns it into a single clear message and a non-zero exit; library callers catch it.
"""


class UserError(Exception):
    """A problem caused by the user's input or environment, reported without a traceback."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        location = ""
        if path is not None:
            location = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(location + message)
        self.path = path
        self.line = line
