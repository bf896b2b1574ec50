"""Writes `docs/config-reference.md` from `dlcot/schema.py`, so the reference cannot drift from the schema:
`tests/unit/test_docs.py` fails when the committed file differs from what this prints.

Regenerate with `make docs` (`python -m tests.config_reference > docs/config-reference.md`). Each dataclass of
the schema becomes one table (key, type, default, the comment written beside the field); the top-level keys of
`RootConfig` say which section each group is.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[1] / "dlcot" / "schema.py"
_COMMENT = re.compile(r"#\s?(.*)$")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").strip()


def _comment(lines: list[str], node: ast.AnnAssign) -> str:
    """The comment at the end of the field's line(s), plus comment lines right above it."""
    own = _COMMENT.search(lines[node.end_lineno - 1])
    above, i = [], node.lineno - 2
    while i >= 0 and lines[i].strip().startswith("#"):
        above.insert(0, lines[i].strip().lstrip("#").strip())
        i -= 1
    parts = [*above, own.group(1)] if own else above
    return " ".join(p for p in parts if p)


def _default(node: ast.AnnAssign) -> str:
    value = node.value
    if value is None:
        return "(required)"
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field":
        for kw in value.keywords:
            if kw.arg == "default_factory":
                factory = ast.unparse(kw.value)
                return {"dict": "{}", "list": "[]"}.get(factory, f"{factory}()")
            if kw.arg == "default":
                return ast.unparse(kw.value)
    text = ast.unparse(value)
    return "(required)" if text == "MISSING" else text


def render() -> str:
    source = SCHEMA.read_text()
    lines = source.splitlines()
    out = ["# Config reference", "",
           "Generated from `dlcot/schema.py` by `make docs` (`python -m tests.config_reference`); "
           "`tests/unit/test_docs.py` fails when this file is stale. Every key can be set on the command line "
           "(`dlcot <command> section.key=value`) or in a recipe; a wrong key or type fails at composition.", ""]
    for cls in (n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)):
        fields = [n for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
        if not fields:
            continue
        doc = ast.get_docstring(cls) or ""
        out += [f"## `{cls.name}`", ""]
        if doc:
            out += [" ".join(doc.split()), ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for f in fields:
            out.append(f"| `{f.target.id}` | `{_cell(ast.unparse(f.annotation))}` | `{_cell(_default(f))}` | "
                       f"{_cell(_comment(lines, f))} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")
