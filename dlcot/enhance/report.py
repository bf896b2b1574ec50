"""report.md and PNG plots of an enhance run (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcot.enhance.stats import Lengths

KIND_ORDER = ("restatement", "understanding", "approach", "verification", "conclusion")
KIND_COLORS = {"restatement": "#8da0cb", "understanding": "#a6d854", "approach": "#fc8d62",
               "verification": "#e78ac3", "conclusion": "#66c2a5"}


def plot(out_dir: Path, stats: dict[str, Any], lengths: Lengths) -> list[str]:
    """Write lengths.png, composition.png and removal.png; return their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tok = stats["tokenizer"]
    names = []
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    if lengths.before:
        top = max(lengths.before)
        bins = [top * i / 30 for i in range(31)] if top else 10
        ax1.hist(lengths.before, bins=bins, alpha=0.6, label="before")
        ax1.hist(lengths.after, bins=bins, alpha=0.6, label="after")
        ax2.scatter(lengths.before, lengths.after, s=6, alpha=0.5)
        ax2.plot([0, top], [0, top], color="grey", linewidth=1, linestyle="--", label="no change")
        ax2.legend(loc="upper left")
        ax1.legend()
    ax1.set_xlabel(f"tokens per trace ({tok})")
    ax1.set_ylabel("traces")
    ax1.set_title("Reasoning length")
    ax2.set_xlabel(f"tokens before ({tok})")
    ax2.set_ylabel(f"tokens after ({tok})")
    ax2.set_title("Per trace")
    fig.tight_layout()
    fig.savefig(out_dir / "lengths.png", dpi=110)
    plt.close(fig)
    names.append("lengths.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    cols = ("before", "after")
    bottoms = [0.0, 0.0]
    for kind in KIND_ORDER:
        vals = [stats["tokens_by_kind_before"].get(kind, 0), stats["tokens_by_kind_after"].get(kind, 0)]
        ax.bar(cols, vals, bottom=bottoms, label=kind, color=KIND_COLORS[kind])
        bottoms = [b + v for b, v in zip(bottoms, vals, strict=False)]
    ax.set_ylabel(f"tokens ({tok}), all kept traces")
    ax.set_title("Composition by segment kind")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "composition.png", dpi=110)
    plt.close(fig)
    names.append("composition.png")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    cut = stats["cut_tokens_by_reason"]
    ax1.barh(list(cut) or ["(nothing cut)"], list(cut.values()) or [0], color="#fc8d62")
    ax1.set_xlabel(f"tokens removed ({tok})")
    ax1.set_title("Removed spans by reason")
    rej = stats["reject_reasons"]
    ax2.barh(list(rej) or ["(none)"], list(rej.values()) or [0], color="#8da0cb")
    ax2.set_xlabel("traces")
    ax2.set_title("Rejected traces by reason")
    fig.tight_layout()
    fig.savefig(out_dir / "removal.png", dpi=110)
    plt.close(fig)
    names.append("removal.png")
    return names


def write(out_dir: Path, stats: dict[str, Any], lengths: Lengths, command: str) -> Path:
    """report.md with the headline figures, tables and the plots."""
    pngs = plot(out_dir, stats, lengths)
    tok = stats["tokenizer"]
    lines = [
        f"# DLCoT enhancement: policy `{stats['policy']}`, backend `{stats['backend']}`", "",
        f"Reproduce: `{command}`", "",
        "| traces in | kept | rejected | tokens before | tokens after | token reduction (total) | "
        "token reduction (median per trace) | answer preserved | approaches / trace (before → after) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {stats['n_input']} | {stats['n_kept']} | {stats['n_rejected']} | {stats['tokens_before']} | "
        f"{stats['tokens_after']} | {stats['token_reduction']:.1%} | {stats['median_token_reduction']:.1%} | "
        f"{_pct(stats['answer_preserved'])} | {stats['mean_approaches_before']} → {stats['mean_approaches_after']} |",
        "", f"Tokens are counted with the `{tok}` tokenizer.", "",
        "## Composition by segment kind (share of tokens)", "", "| kind | before | after |", "|---|---:|---:|",
    ]
    for kind in KIND_ORDER:
        lines.append(f"| {kind} | {_pct(stats['token_share_before'].get(kind, 0.0))} | "
                     f"{_pct(stats['token_share_after'].get(kind, 0.0))} |")
    lines += ["", "## What was removed (tokens)", "", "| reason | tokens |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in stats["cut_tokens_by_reason"].items()] or ["| (nothing) | 0 |"]
    lines += ["", "## Rejected traces", "", "| reason | traces |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in stats["reject_reasons"].items()] or ["| (none) | 0 |"]
    note = stats.get("error_spans_note")
    spans = f"Error spans marked: {stats['error_spans_marked']}." + (f" {note[0].upper()}{note[1:]}." if note else "")
    lines += ["", spans,
              f"Connective repairs at seams: {stats['repairs']}. Notes: {stats['notes'] or 'none'}.", ""]
    lines += [f"![{p}]({p})" for p in pngs]
    path = out_dir / "report.md"
    from dlcot.records import atomic_write_text

    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"
