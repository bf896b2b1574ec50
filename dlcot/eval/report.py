"""report.md and plots of an eval run: accuracy against response length, and the length histogram.

The accuracy-vs-tokens curve bins responses by length: a student that overthinks shows accuracy falling in the
long bins while answerless and truncated responses pile up at max_new_tokens.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlcot.records import atomic_write_text


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else "—" if v is None else str(v)


def plot(out: Path, rows: Sequence[dict[str, Any]], bins: int = 10) -> list[str]:
    """Write accuracy_vs_tokens.png and length_hist.png; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tokens = np.array([r["n_tokens"] for r in rows], dtype=float)
    correct = np.array([bool(r["correct"]) for r in rows])
    edges = np.unique(np.quantile(tokens, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([tokens.min(), tokens.min() + 1])
    idx = np.clip(np.digitize(tokens, edges[1:-1]), 0, len(edges) - 2)
    xs = [tokens[idx == b].mean() for b in range(len(edges) - 1) if (idx == b).any()]
    ys = [correct[idx == b].mean() for b in range(len(edges) - 1) if (idx == b).any()]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, ys, marker="o")
    ax.set(xlabel="response tokens (bin mean)", ylabel="accuracy", ylim=(-0.02, 1.02),
           title="Accuracy vs response length")
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_tokens.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist([tokens[correct], tokens[~correct]], bins=30, stacked=True, label=["correct", "incorrect"])
    ax.set(xlabel="response tokens", ylabel="responses", title="Response length")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "length_hist.png", dpi=100)
    plt.close(fig)
    return ["accuracy_vs_tokens.png", "length_hist.png"]


def write_report(out: Path, metrics: dict[str, Any], rows: Sequence[dict[str, Any]]) -> Path:
    pngs = plot(out, rows)
    m = metrics
    lines = [f"# Eval: {m['model']} on {m['benchmark']}", "",
             f"Source: `{m['benchmark_source']}`; engine `{m['engine']}`; tokens counted with `{m['tokenizer']}`; "
             f"sampling {m['sampling']}.", "",
             f"{m['n']} problems x {m['n_samples']} samples scored; {m['n_rejected']} rejected "
             f"({m['reject_reasons'] or 'none'}), see rejected.jsonl.", "",
             "| metric | value |", "|---|---|"]
    lines[2] += f" Grading `{m.get('grading')}`, truncated outputs: `{m.get('truncated')}`."
    for key in ("accuracy", "accuracy_convention", "accuracy_strict", "mean_tokens", "median_tokens",
                "tokens_per_correct", "mean_tokens_correct", "mean_tokens_incorrect", "answerless_rate",
                "unmarked_rate", "truncated_rate", "undecided_rate"):
        lines.append(f"| {key} | {_fmt(m[key])} |")
    lines += [f"| pass@{k} | {_fmt(v)} |" for k, v in m["pass_at_k"].items()]
    lines += [f"| maj@{k} | {_fmt(v)} |" for k, v in m["maj_at_k"].items()]
    lines += [f"| '{w}' per response | {_fmt(v)} |" for w, v in m["markers_per_response"].items()]
    for fld, groups in m["breakdown"].items():
        lines += ["", f"## By {fld}", "", "| value | problems | accuracy | mean tokens | answerless |",
                  "|---|---|---|---|---|"]
        lines += [f"| {v} | {g['n']} | {_fmt(g['accuracy'])} | {_fmt(g['mean_tokens'])} | "
                  f"{_fmt(g['answerless_rate'])} |" for v, g in groups.items()]
    lines += ["", *[f"![{p}]({p})" for p in pngs], ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"
