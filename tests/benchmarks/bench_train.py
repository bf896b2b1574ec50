"""Training throughput of `dlcot train` on the enhanced Sky-T1 traces (tiny Qwen2 students, CPU).

The 500 shared Sky-T1 traces are first enhanced in-process (`enhance=keep_first_correct_dedup_all`, as a recipe
would); both measurements train on that output.
1. dlcot.train vs a plain TRL `SFTTrainer` script, same model, traces, template and settings → median ratio over
   rounds of plain / dlcot / plain, with plain-vs-plain as the noise floor (target ≥ 1.0: our glue costs nothing
   per token).
2. Padding-free packing vs padded batches on the same variable-length traces (≤ 2048 tokens, over-long ones
   dropped), 256-wide tiny student → ratio (target ≥ 1.3). For contrast, the same comparison on short synthetic
   traces (300-1000 tokens, ≤ 1024), where padding wastes little.

Tokens/s counts non-padding tokens (`num_input_tokens_seen`) over the trainer's own train_runtime. The student
is the tiny Qwen2 built 256 wide (see `main`).
Run: `.venv/bin/python tests/benchmarks/bench_train.py` (~12 min on 2 cores; `--only overhead|packing` for one half).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKY = REPO.parent / "shared" / "data" / "longcot" / "skyt1_math500.jsonl"


def plain_trl(model_dir: Path, data: Path, out: Path, *, max_length: int, batch: int, steps: int, lr: float
              ) -> tuple[float, int]:
    """What a user would write without dlcot: same tokenizer/template, conversations, SFTConfig settings."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.chat_template = (REPO / "dlcot/train/templates/qwen2_5.jinja").read_text()
    rows = [json.loads(line) for line in data.open()]
    msgs = [[{"role": "user", "content": r["problem"]},
             {"role": "assistant", "content": f"<think>\n{r['enhanced'].strip()}\n</think>\n\n"
                                              f"{r['response'].strip()}"}] for r in rows]
    args = SFTConfig(output_dir=str(out), use_cpu=True, bf16=False, activation_checkpointing=False,
                     gradient_checkpointing=False,
                     max_length=max_length, assistant_only_loss=True, per_device_train_batch_size=batch,
                     max_steps=steps, learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0,
                     logging_steps=steps, save_strategy="no", report_to=[], seed=0, data_seed=0,
                     include_num_input_tokens_seen="non_padding", disable_tqdm=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"messages": msgs}),
                         processing_class=tok)
    metrics = trainer.train().metrics
    tokens = trainer.state.num_input_tokens_seen
    return tokens / metrics["train_runtime"], tokens


def dlcot_train(data: Path, out: Path, runs: Path, *overrides: str) -> tuple[float, dict]:
    from dlcot.config import compose
    from dlcot.train.sft import run

    cfg = compose("train", ["student=tiny_qwen2", "train=sft_cpu_tiny", f"train.data={data}", f"output={out}",
                            f"runs_dir={runs}", "train.save_steps=100000", "train.resume=never",
                            "+train.trl.disable_tqdm=true", *overrides])
    stats = json.loads((run(cfg) / "train_stats.json").read_text())
    return stats["tokens_per_second"], stats


def enhanced_traces(out: Path) -> Path:
    """The shared Sky-T1 traces through `dlcot enhance` (in-process): the data a recipe's SFT stage reads."""
    from dlcot.config import compose
    from dlcot.enhance.commands import enhance

    cfg = compose("enhance", [f"input={SKY}", f"output={out}", "enhance=keep_first_correct_dedup_all"])
    return enhance(cfg) / "enhanced.jsonl"


def packed_vs_padded(data: Path, tmp: Path, model: Path, tag: str, *, max_length: int, batch: int, repeats: int,
                     lr: float) -> tuple[float, float, dict]:
    """Best tokens/s of one epoch padded (batches of `batch`) and packed (one padding-free row of `max_length`)."""
    var = [f"student.model={model}", f"train.max_length={max_length}", "train.length_policy=drop",
           f"train.learning_rate={lr}", "train.epochs=1", "train.max_steps=-1", "train.logging_steps=1000"]
    padded, packed = [], []
    for i in range(repeats):
        tps, stats = dlcot_train(data, tmp / f"{tag}-padded{i}", tmp / "runs", *var,
                                 f"train.per_device_batch_size={batch}")
        padded.append(tps)
        # one packed row per step: padding-free flattens a batch into one sequence, whose attention costs
        # (batch tokens)^2 without varlen kernels
        packed.append(dlcot_train(data, tmp / f"{tag}-packed{i}", tmp / "runs", *var, "train.packing=true",
                                  "train.padding_free=true", "train.per_device_batch_size=1")[0])
    return max(packed), max(padded), stats


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=200)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--var-traces", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3, help="packing: runs of each (best taken)")
    ap.add_argument("--rounds", type=int, default=5, help="overhead: rounds of plain TRL, dlcot, plain TRL")
    ap.add_argument("--only", choices=("overhead", "packing"), help="run one of the two measurements")
    opts = ap.parse_args()
    if not SKY.is_file():
        print(f"skip: {SKY} not found (../shared/data is needed for this benchmark)")
        return 0
    logging.disable(logging.WARNING)
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(REPO))
    from dlcot.train.models import tiny_model_dir

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    rows = [json.loads(line) for line in enhanced_traces(tmp / "enhanced").open()]
    rows = [r for r in rows if r.get("response")]  # a final solution after the thought (train rejects the others)
    data = tmp / "sky.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[:opts.traces]))
    # 256 wide (~1M parameters), so that a step is mostly matmuls as in real students, not Python overhead (the
    # 64-wide test model has 0.1M), and on CPU, without varlen flash-attention kernels, attention over a packed
    # row is the full causal block-diagonal product: on the 64-wide model that cost alone would decide packing.
    wide = tiny_model_dir("qwen", tmp / "runs", hidden_size=256, intermediate_size=768)
    lr, batch = 1e-3, 4
    if opts.only != "packing":
        overhead(data, wide, tmp, opts, lr=lr, batch=batch)
    if opts.only != "overhead":
        packing(data, wide, tmp, opts, lr=lr, batch=batch)
    return 0


def overhead(data: Path, model: Path, tmp: Path, opts: argparse.Namespace, *, lr: float, batch: int) -> None:
    """1. dlcot.train vs plain TRL on padded batches of traces truncated at 512 tokens. Each round runs plain TRL,
    dlcot, plain TRL again: dlcot is compared with the mean of the two runs around it (cancelling drift), and the
    two plain runs against each other give the machine's own run-to-run spread (A/A) to read the figure against."""
    same = [f"student.model={model}", "train.max_length=512", "train.length_policy=truncate",
            f"train.per_device_batch_size={batch}", f"train.max_steps={opts.steps}", f"train.learning_rate={lr}",
            f"train.logging_steps={opts.steps}"]

    def plain(tag: str) -> tuple[float, int]:
        tps, tokens = plain_trl(model, data, tmp / tag, max_length=512, batch=batch, steps=opts.steps, lr=lr)
        return tps, tokens

    ratios, noise = [], []
    for i in range(opts.rounds):
        before, plain_tokens = plain(f"plain{i}a")
        ours, stats = dlcot_train(data, tmp / f"ours{i}", tmp / "runs", *same)
        after, _ = plain(f"plain{i}b")
        ratios.append(ours / ((before + after) / 2))
        noise.append(after / before)
        print(f"  round {i}: plain TRL {before:,.0f}, dlcot {ours:,.0f}, plain TRL {after:,.0f} tok/s: "
              f"dlcot ratio {ratios[-1]:.3f}, plain/plain {noise[-1]:.3f}")
    n = sum(1 for _ in data.open())
    print(f"dlcot.train vs plain TRL SFTTrainer (256-wide tiny qwen2, {n} enhanced Sky-T1 traces truncated to 512 "
          f"tokens, batch {batch}, {opts.steps} steps; tokens trained: dlcot {stats['tokens_seen']:,}, plain "
          f"{plain_tokens:,}):")
    print(f"  median ratio {statistics.median(ratios):.2f} over {opts.rounds} rounds (range {min(ratios):.2f}-"
          f"{max(ratios):.2f}) (target >= 1.0); machine spread, plain TRL vs itself: median "
          f"{statistics.median(noise):.2f}, range {min(noise):.2f}-{max(noise):.2f}")


def packing(data: Path, wide: Path, tmp: Path, opts: argparse.Namespace, *, lr: float, batch: int) -> None:
    """2. padding-free packing vs padded on the enhanced traces, and on short synthetic ones for contrast."""
    from dlcot.data.synthetic import synthetic_traces

    packed, padded, stats = packed_vs_padded(data, tmp, wide, "sky", max_length=2048, batch=batch,
                                             repeats=opts.repeats, lr=lr)
    print(f"padding-free packing vs padded (256-wide tiny qwen2, {stats['n_kept']} enhanced Sky-T1 traces of <= 2048 "
          f"tokens, {stats['dataset_tokens']:,} tokens, padded batches of {batch} vs packed rows of 2048, one epoch, "
          f"best of {opts.repeats}):")
    print(f"  packed {packed:,.0f} tok/s  padded {padded:,.0f} tok/s  ratio {packed / padded:.2f} (target >= 1.3)")

    var_data = tmp / "synthetic.jsonl"
    var_data.write_text("".join(json.dumps(t.to_trace_record()) + "\n" for t in synthetic_traces(opts.var_traces, 0)))
    packed, padded, stats = packed_vs_padded(var_data, tmp, wide, "short", max_length=1024, batch=batch,
                                             repeats=opts.repeats, lr=lr)
    print(f"  contrast, short traces ({stats['n_kept']} synthetic traces of 300-1000 tokens, rows of 1024): "
          f"packed {packed:,.0f} tok/s  padded {padded:,.0f} tok/s  ratio {packed / padded:.2f}")


if __name__ == "__main__":
    sys.exit(main())
