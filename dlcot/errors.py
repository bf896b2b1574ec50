"""One exception type per failure family, so the CLI can print a clear message and pick an exit code.

Messages name the file, line and field at fault and, where there is one, the fix.
"""
from __future__ import annotations


class DlcotError(Exception):
    """Base of every error dlcot raises on purpose (the CLI prints these without a traceback)."""

    exit_code = 1


class ConfigError(DlcotError, ValueError):
    """The composed config is invalid: unknown option or key, wrong type, missing value, bad combination."""

    exit_code = 2


class RecordError(DlcotError, ValueError):
    """Input data that cannot be used at all (missing file, empty file, nothing usable left)."""

    def __init__(self, message: str, *, path: object = None, line: int | None = None, field: str | None = None):
        where = ":".join(str(p) for p in (path, line) if p is not None)
        loc = f"{where}: " if where else ""
        fld = f"field {field!r}: " if field else ""
        super().__init__(f"{loc}{fld}{message}")
        self.path, self.line, self.field = path, line, field


class ModelError(DlcotError):
    """A model/tokenizer that cannot be used as configured (no chat template, unknown student, no EOS)."""
