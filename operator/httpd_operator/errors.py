"""Errors that a user can fix by editing the site; they end up in status, events and logs."""

from __future__ import annotations


class SpecError(ValueError):
    """A site the operator refuses: `reason` is the condition reason, `field` the spec path."""

    def __init__(self, field: str, message: str, reason: str = "InvalidSpec") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = reason
        self.message = f"{field}: {message}"
