"""The base classes of every config section: `Choice` (a typed list of options) and `Section` (a section that
validates itself), and `check`, the one way a rule across fields fails."""
from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any, ClassVar

from dlcot.errors import ConfigError


class Choice(str, Enum):
    """A config choice: OmegaConf converts `enhance.backend=llm` to the member and rejects any other value at
    composition, naming the key and the options. Members are strings (`== "llm"`, JSON, f-strings give the value),
    so stages compare them with plain literals. A member's name is its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def options(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class Section:
    """Base of the config sections: `validate(key)` checks `MINIMUMS` (lower bounds of numeric fields; a
    negative count is a typo, not a request) and the sub-sections; a section overrides it for its other rules
    and calls this first. `key` is the section's dotted path, so every message names the full key."""

    MINIMUMS: ClassVar[dict[str, float]] = {}

    def validate(self, key: str) -> None:
        for name, low in self.MINIMUMS.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool) and value < low:
                raise ConfigError(f"{key}.{name}={value}: must be >= {low}")
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Section):
                value.validate(f"{key}.{f.name}")


def check(ok: bool, key: str, value: Any, rule: str) -> None:
    """Raise ConfigError `key=value: rule` unless `ok`."""
    if not ok:
        raise ConfigError(f"{key}={value}: {rule}")
