"""The key-factors paper's table shape for `dlcot report`: rows are students, columns the factor a sweep varied
(CoT level, format or teacher; the answer-only baseline last), cells the held-out accuracy in percent.

A run belongs here when its model was trained on released key-factors data: `train_stats.json` then has a `source`
(dlcot.data.llamafactory: entry, teacher, format, granularity). Only the factors that differ between the CoT runs
label the columns, so a granularity sweep reads `L1 … L6`, a teacher sweep `gpt4o … human`. One table per
benchmark.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The paper's student order (its tables), then any other student by name.
STUDENT_ORDER = ("llama3_2_1b_base", "llama3_2_3b_base", "gemma_2b_base", "bloom_560m", "bloom_1b1", "bloom_1b7",
                 "bloom_3b")
FORMAT_ORDER = ("cot", "bsm", "rar", "sym")
ANSWER_ONLY = "answer-only"


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def collect(runs: Path) -> list[dict[str, Any]]:
    """One row per evaluated run whose model was trained on released key-factors data."""
    rows = []
    for metrics_path in sorted(runs.rglob("metrics.json")):
        m = _read(metrics_path)
        stats = _read(Path(m["model"]) / "train_stats.json") if m.get("model") else {}
        source = stats.get("source")
        if not source:
            continue
        rows.append({"student": stats.get("student", "?"), "benchmark": m.get("benchmark"),
                     "accuracy": m.get("accuracy"), "n": m.get("n"), **{k: source.get(k) for k in
                                                                        ("teacher", "format", "granularity", "entry")}})
    return rows


def column_labels(rows: list[dict[str, Any]]) -> list[str]:
    """Each row's column: `answer-only`, or the factors that vary among the CoT rows (teacher, format, L<level>)."""
    cot = [r for r in rows if r["format"] != "answer_only"]
    varies = {k: len({r[k] for r in cot if r[k] is not None}) > 1 for k in ("teacher", "format", "granularity")}
    labels = []
    for r in rows:
        if r["format"] == "answer_only":
            labels.append(ANSWER_ONLY)
            continue
        parts = [r["teacher"] if varies["teacher"] else None, r["format"] if varies["format"] else None,
                 f"L{r['granularity']}" if varies["granularity"] and r["granularity"] is not None else None]
        parts = [p for p in parts if p]
        labels.append(" ".join(parts) or (f"L{r['granularity']}" if r["granularity"] is not None else r["entry"]))
    return labels


def _column_key(label: str, row: dict[str, Any], first_seen: dict[str, int]) -> tuple:
    fmt = FORMAT_ORDER.index(row["format"]) if row["format"] in FORMAT_ORDER else len(FORMAT_ORDER)
    return (label == ANSWER_ONLY, first_seen.get(row["teacher"] or "", 0), fmt, row["granularity"] or 0, label)


def _student_key(name: str) -> tuple:
    return (STUDENT_ORDER.index(name), name) if name in STUDENT_ORDER else (len(STUDENT_ORDER), name)


def tables(rows: list[dict[str, Any]]) -> str:
    """Markdown: one table per benchmark, rows students, columns the varied factor, cells accuracy (%)."""
    out = []
    for bench in sorted({str(r["benchmark"]) for r in rows}):
        sub = [r for r in rows if str(r["benchmark"]) == bench]
        labels = column_labels(sub)
        teachers: dict[str, int] = {}
        for r in sub:
            teachers.setdefault(r["teacher"] or "", len(teachers))
        order: dict[str, tuple] = {}
        for label, r in zip(labels, sub, strict=True):
            order.setdefault(label, _column_key(label, r, teachers))
        columns = sorted(order, key=order.__getitem__)
        cells: dict[tuple[str, str], str] = {}
        for label, r in zip(labels, sub, strict=True):
            acc = r["accuracy"]
            text = "–" if acc is None else f"{100 * acc:.1f}"
            key = (r["student"], label)
            cells[key] = text if key not in cells else f"{cells[key]} / {text}"  # repeated runs: all shown
        students = sorted({r["student"] for r in sub}, key=_student_key)
        n = sorted({r["n"] for r in sub if r["n"] is not None})
        head = f"### {bench}: accuracy (%) on {'/'.join(map(str, n)) or '?'} problems\n\n"
        table = ["| student | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        table += [f"| {s} | " + " | ".join(cells.get((s, c), "") for c in columns) + " |" for s in students]
        out.append(head + "\n".join(table) + "\n")
    return "\n".join(out)


def report(runs: Path) -> str:
    """The key-factors tables of every such run under `runs` ("" when there is none)."""
    rows = collect(runs)
    return f"## Key factors (arXiv 2502.18001): the paper's table shape\n\n{tables(rows)}" if rows else ""
