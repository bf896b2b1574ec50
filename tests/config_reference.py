"""Writes `docs/config-reference.md` from the schema (`dlcot/schema/`), so the reference cannot drift from the schema:
`tests/unit/test_docs.py` fails when the committed file differs from what this prints.

Regenerate with `make docs` (`python -m tests.config_reference > docs/config-reference.md`). Each dataclass of
the schema becomes one table (key, type, default, the comment written beside the field); the top-level keys of
`RootConfig` say which section each group is. A choice's type cell lists its options (the members of its
`Choice` enum) and a bounded number its minimum (the section's `MINIMUMS`).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from dlcot import schema

SCHEMA = Path(__file__).resolve().parents[1] / "dlcot" / "schema"
# the schema's modules in pipeline order; the root section (`__init__`) last
MODULES = ("base", "inputs", "stages", "train_eval", "__init__")
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
    if "." in text and isinstance(getattr(schema, text.split(".")[0], None), type):  # a Choice member: its value
        return repr(str(getattr(getattr(schema, text.split(".")[0]), text.split(".")[1])))
    return "(required)" if text == "MISSING" else text


def _type(annotation: str) -> str:
    """The annotation with each Choice enum spelt out as its options: `Dedup` → `none | all | last_k`."""
    def options(m: re.Match) -> str:
        obj = getattr(schema, m.group(0), None)
        if isinstance(obj, type) and issubclass(obj, schema.Choice):
            return " | ".join(obj.options())
        return m.group(0)
    return re.sub(r"\b[A-Z]\w*\b", options, annotation)


def render() -> str:
    out = ["# Config reference", "",
           "Generated from `dlcot/schema/` by `make docs` (`python -m tests.config_reference`); "
           "`tests/unit/test_docs.py` fails when this file is stale. Every key can be set on the command line "
           "(`dlcot <command> section.key=value`) or in a recipe; a wrong key, a wrong type, a value outside a "
           "choice's options or below its minimum fails at composition, naming the key.", ""]
    missing = {f.stem for f in SCHEMA.glob("*.py")} - set(MODULES)
    assert not missing, f"schema modules not in MODULES (their keys would be missing here): {sorted(missing)}"
    for module in MODULES:
        out += _tables((SCHEMA / f"{module}.py").read_text())
    return "\n".join(out)


def _tables(source: str) -> list[str]:
    """One table per dataclass of one schema module that has fields."""
    lines, out = source.splitlines(), []
    for cls in (n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)):
        fields = [n for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
                  and not ast.unparse(n.annotation).startswith("ClassVar")]
        if not fields:
            continue
        doc = ast.get_docstring(cls) or ""
        out += [f"## `{cls.name}`", ""]
        if doc:
            out += [" ".join(doc.split()), ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        minimums = getattr(getattr(schema, cls.name), "MINIMUMS", {})
        for f in fields:
            kind = _type(ast.unparse(f.annotation))
            if f.target.id in minimums:
                kind += f", >= {minimums[f.target.id]}"
            out.append(f"| `{f.target.id}` | `{_cell(kind)}` | `{_cell(_default(f))}` | {_cell(_comment(lines, f))} |")
        out.append("")
    return out


if __name__ == "__main__":
    print(render(), end="")
