"""Small train-test inputs: synthetic traces (dlcot.data.synthetic when present) and preference pairs cut from
them, written as JSONL; callbacks that watch parameters and simulate a kill."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import TrainerCallback


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


def pairs(n: int, seed: int = 0) -> list[dict]:
    """`n` preference pairs as an MCTS tree gives them: both thoughts share the trace's first paragraphs, then
    the chosen one goes on to the right answer and the rejected one to a wrong one."""
    rows = []
    for t in traces(n, seed):
        paras = t["reasoning"].split("\n\n")
        keep = max(1, len(paras) // 2)
        wrong = f"{t['gold_answer']}1"
        rejected = "\n\n".join([*paras[:keep], f"Hmm, I think it comes to {wrong}. So the answer is {wrong}."])
        rows.append({"id": t["id"], "problem": t["problem"], "gold_answer": t["gold_answer"],
                     "chosen": t["reasoning"], "chosen_response": t["response"],
                     "rejected": rejected, "rejected_response": f"The answer is \\boxed{{{wrong}}}."})
    return rows


class ParamWatch(TrainerCallback):
    """Snapshots the trainable parameters at train begin and the names of those unchanged at train end."""

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def on_train_end(self, args, state, control, model=None, **kw):
        after = dict(model.named_parameters())
        self.unchanged = [n for n, p in self.before.items() if torch.equal(p, after[n].detach())]


class StopAfter(TrainerCallback):
    """Simulates a kill right after the checkpoint at `step` is written."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kw):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed after step {self.step}")
