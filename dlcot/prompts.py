"""Filling prompt templates whose text is full of LaTeX braces.

Shipped prompts end in `\\boxed{}`, and `str.format` reads that `{}` as a positional placeholder
(`IndexError: Replacement index 0 out of range`). `fill` substitutes only `{name}` placeholders and leaves every
other brace as written, so a template author types LaTeX as LaTeX. `{{` and `}}` still read as one literal brace,
so templates written for `str.format` (`\\boxed{{}}`) give the same text as before.
"""
from __future__ import annotations

import re

from dlcot.errors import ConfigError

# `{{`, `}}`, or a `{name}` placeholder; any other brace (`{}`, `\frac{1}{2}` argument text) is left as it is
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, where: str, /, **values: object) -> str:
    """`template` with each `{name}` replaced by `values[name]`. A `{word}` that names no value is an error
    naming `where` (the config key) and the names allowed: a misspelt placeholder never reaches a model."""

    def sub(m: re.Match[str]) -> str:
        token, name = m.group(0), m.group(1)
        if name is None:
            return token[0]
        if name not in values:
            raise ConfigError(f"{where}={template!r}: {{{name}}} is not a field here (fields: "
                              f"{', '.join('{' + k + '}' for k in values)}); write a literal brace as {{{{ or }}}}")
        return str(values[name])

    return _TOKEN.sub(sub, template)
