"""Small SFT inputs for the train tests: synthetic traces (dlcot.data.synthetic when present) written as JSONL."""
from __future__ import annotations

import json
from pathlib import Path


def traces(n: int, seed: int = 0) -> list[dict]:
    """`n` trace records with problem / reasoning / response / gold_answer, deterministic in `seed`."""
    try:
        from dlcot.data.synthetic import synthetic_traces
    except ImportError:
        synthetic_traces = None
    if synthetic_traces is not None:
        return [t.to_trace_record() for t in synthetic_traces(n, seed)]
    rows = []
    for i in range(n):
        a, b = 3 + (i * 7 + seed) % 17, 2 + (i * 5 + seed) % 13
        reasoning = " ".join([f"I add {a} and {b}.", f"{a} + {b} = {a + b}."] + ["Wait, let me check.",
                             f"{a + b} - {b} = {a}. Yes."] * (i % 3))
        rows.append({"id": f"t{i}", "problem": f"What is {a} + {b}?", "reasoning": reasoning,
                     "response": f"The answer is \\boxed{{{a + b}}}.", "gold_answer": str(a + b)})
    return rows


def write_traces(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
