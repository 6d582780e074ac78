"""User-facing errors: one clear line naming the file, key path, value and what is allowed.

The CLI turns a :class:`UserError` into that line and exit status 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (a file, a key in it, or a command-line flag)."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 value: object = None, allowed: str | None = None):
        self.file, self.key, self.value, self.allowed = file, key, value, allowed
        self.detail = message
        super().__init__(self.render())

    def render(self) -> str:
        where = ": ".join(p for p in (self.file, self.key) if p)
        text = f"{where}: {self.detail}" if where else self.detail
        if self.value is not None:
            shown = repr(self.value)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            text += f" (got {shown})"
        if self.allowed:
            text += f"; allowed: {self.allowed}"
        return text


class ConfigError(UserError):
    """A configuration file is missing, unreadable, malformed or invalid."""
