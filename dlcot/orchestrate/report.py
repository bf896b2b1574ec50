"""`dlcot report runs=DIR`: one table of every evaluated run under DIR, like the papers' tables.

Each `metrics.json` (written by `dlcot eval`) is one row. The row is joined with what produced the model it
scored: `train_stats.json` in the model directory (student, family, homologous?, train tokens) and the
resolved `config.yaml` of the stage that wrote the training data (which DLCoT policy, `none` = raw traces).
Writes `report.md`, `report.csv` and `accuracy_vs_tokens.png` into `output=` (default: DIR).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlcot.errors import ConfigError, RecordError
from dlcot.orchestrate.report_factors import report as key_factors_report
from dlcot.records import atomic_write_text

COLUMNS = ("run", "student", "family", "teacher_family", "homologous", "data", "train_tokens", "benchmark", "n",
           "accuracy", "mean_tokens", "answerless_rate", "pass_at_k")


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file ({} when absent); a truncated or non-object file is an error naming it."""
    if not path.is_file():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise RecordError(f"not valid JSON ({err}); truncated by a kill? rerun the stage that wrote it",
                          path=path) from None
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type(obj).__name__}", path=path)
    return obj


def _marco_row(model: Path, mcts: dict[str, Any]) -> str:
    """The Marco-o1 v2 paper's row name (Tables 5-6) of a model trained on `dlcot mcts` data, read from the
    training run's own config: SFT, or +DPO with the parts it used (+data balance is the pairs' length rule)."""
    cfg_path = model / "config.yaml"
    t = (OmegaConf.to_container(OmegaConf.load(cfg_path)) or {}).get("train", {}) if cfg_path.is_file() else {}
    if t.get("stage") != "dpo":
        return "Marco-o1 v2: SFT"
    parts = ["+DPO"]
    if (mcts.get("pairs") or {}).get("length") == "balanced":
        parts.append("+data balance")
    if t.get("label_smoothing"):
        parts.append(f"+cDPO (ε={t['label_smoothing']})")
    if t.get("sft_alpha"):
        parts.append(f"+joint loss (α={t['sft_alpha']})")
    if t.get("prefix_masking"):
        parts.append("+masking")
    return "Marco-o1 v2: " + " ".join(parts)


def _data_label(train: dict[str, Any], model: Path | None = None) -> str:
    """`enhanced:<policy>` / `raw` from the config of the stage that wrote the training data."""
    data = train.get("data")
    if not data:
        return "?"
    cfg_path = Path(data).parent / "config.yaml"
    if not cfg_path.is_file():
        return Path(data).name
    cfg = OmegaConf.to_container(OmegaConf.load(cfg_path))
    assert isinstance(cfg, dict)
    if cfg.get("command") == "generate":
        cot = cfg.get("cot") or {}
        level = cot.get("granularity")
        return (f"raw ({(cfg.get('teacher') or {}).get('name', '?')}, {cot.get('format', 'cot')}"
                + (f", granularity {level})" if level is not None else ")"))
    if cfg.get("command") == "mcts" and model is not None:
        return _marco_row(model, cfg.get("mcts") or {})
    if cfg.get("command") != "enhance":
        return f"raw ({cfg.get('command', '?')})"
    policy = (cfg.get("enhance") or {}).get("name", "?")
    return "raw" if policy == "none" else f"enhanced ({policy})"


def collect(runs: Path) -> list[dict[str, Any]]:
    rows = []
    for metrics_path in sorted(runs.rglob("metrics.json")):
        m = _read_json(metrics_path)
        model = m.get("model")
        train = _read_json(Path(model) / "train_stats.json") if model else {}
        rows.append({
            "run": str(metrics_path.parent.relative_to(runs)),
            "student": train.get("student", Path(model).name if model else "?"),
            "family": train.get("student_family", "?"),
            "teacher_family": train.get("teacher_family", "?"),
            "homologous": train.get("homologous", "?"),
            "data": _data_label(train, Path(model)) if train else "untrained",
            "train_tokens": train.get("tokens_seen", 0),
            "benchmark": m.get("benchmark"),
            "n": m.get("n"),
            "accuracy": m.get("accuracy"),
            "mean_tokens": m.get("mean_tokens"),
            "answerless_rate": m.get("answerless_rate"),
            "pass_at_k": ", ".join(f"{k}: {v:.3f}" for k, v in (m.get("pass_at_k") or {}).items()),
        })
    return rows


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def to_markdown(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    return head + "".join("| " + " | ".join(_fmt(r[c]) for c in COLUMNS) + " |\n" for r in rows)


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        if r["accuracy"] is None or r["mean_tokens"] is None:
            continue
        marker = "o" if r["homologous"] is True else "s"
        ax.scatter(r["mean_tokens"], r["accuracy"], marker=marker)
        ax.annotate(f"{r['student']} / {r['data']}", (r["mean_tokens"], r["accuracy"]), fontsize=7)
    ax.set_xlabel("mean response tokens")
    ax.set_ylabel("accuracy (pass@1)")
    ax.set_title("accuracy vs response length (o homologous, s nonhomologous)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: DictConfig) -> Path:
    if not cfg.runs:
        raise ConfigError("dlcot report needs runs=DIR (a directory holding eval outputs with metrics.json)")
    runs = Path(cfg.runs)
    rows = collect(runs)
    if not rows:
        raise ConfigError(f"no metrics.json under {runs}: run `dlcot eval ... output=DIR` first")
    out = Path(cfg.output) if cfg.output else runs
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "report.csv", buf.getvalue())
    _plot(rows, out / "accuracy_vs_tokens.png")
    factors = key_factors_report(runs)  # the key-factors paper's table (students x level/format/teacher), if any
    if factors:
        atomic_write_text(out / "key_factors.md", factors)
        print(factors)
    atomic_write_text(out / "report.md", f"# dlcot report: {runs}\n\n{to_markdown(rows)}\n"
                      "![accuracy vs tokens](accuracy_vs_tokens.png)\n" + (f"\n{factors}" if factors else ""))
    return out / "report.md"
