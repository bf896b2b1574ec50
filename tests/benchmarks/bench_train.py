"""Training throughput of `dlcot train` on real Sky-T1 traces (tiny Qwen2 student, CPU).

1. dlcot.train vs a plain TRL `SFTTrainer` script, same model, traces, template and settings → ratio (target ≥ 1.0:
   our glue costs nothing per token).
2. Padding-free packing vs padded batches on variable-length (synthetic) traces, 256-wide tiny student → ratio
   (target ≥ 1.3).

Tokens/s counts non-padding tokens (`num_input_tokens_seen`) over the trainer's own train_runtime, best of
`--repeats` runs. Run: `.venv/bin/python tests/benchmarks/bench_train.py` (~2-3 min on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKY = REPO.parent / "shared" / "data" / "longcot" / "skyt1_math500.jsonl"


class CpuClock:
    """Process CPU seconds spent inside `train()`: unlike wall time, barely moved by other jobs on a shared box."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, *args, **kwargs):
                clock.start = time.process_time()

            def on_train_end(self, *args, **kwargs):
                clock.seconds = time.process_time() - clock.start

        self.callback, self.start, self.seconds = _Callback(), 0.0, 0.0


def plain_trl(model_dir: Path, data: Path, out: Path, *, max_length: int, batch: int, steps: int, lr: float
              ) -> tuple[float, float]:
    """What a user would write without dlcot: same tokenizer/template, conversations, SFTConfig settings."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.chat_template = (REPO / "dlcot/train/templates/qwen2_5.jinja").read_text()
    rows = [json.loads(line) for line in data.open()]
    msgs = [[{"role": "user", "content": r["problem"]},
             {"role": "assistant", "content": f"<think>\n{r['reasoning'].strip()}\n</think>\n\n"
                                              f"{r['final_solution'].strip()}"}] for r in rows]
    args = SFTConfig(output_dir=str(out), use_cpu=True, bf16=False, activation_checkpointing=False,
                     gradient_checkpointing=False,
                     max_length=max_length, assistant_only_loss=True, per_device_train_batch_size=batch,
                     max_steps=steps, learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0,
                     logging_steps=steps, save_strategy="no", report_to=[], seed=0, data_seed=0,
                     include_num_input_tokens_seen="non_padding", disable_tqdm=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    clock = CpuClock()
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"messages": msgs}),
                         processing_class=tok, callbacks=[clock.callback])
    metrics = trainer.train().metrics
    tokens = trainer.state.num_input_tokens_seen
    return tokens / metrics["train_runtime"], tokens / clock.seconds


def dlcot_train(data: Path, out: Path, runs: Path, *overrides: str, clock: CpuClock | None = None
                ) -> tuple[float, dict]:
    from dlcot.config import compose
    from dlcot.train.sft import run

    cfg = compose("train", ["student=tiny_qwen2", "train=sft_cpu_tiny", f"train.data={data}", f"output={out}",
                            f"runs_dir={runs}", "train.save_steps=100000", "train.resume=never",
                            "+train.extra.disable_tqdm=true", *overrides])
    stats = json.loads((run(cfg, callbacks=[clock.callback] if clock else None) / "train_stats.json").read_text())
    return stats["tokens_per_second"], stats


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=200)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--var-traces", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
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
    rows = [json.loads(line) for line in SKY.open()]
    rows = [r for r in rows if r.get("final_solution") and r.get("reasoning")]
    data = tmp / "sky.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[:opts.traces]))
    model_dir = tiny_model_dir("qwen", tmp / "runs")
    lr, batch = 1e-3, 4

    # 1. overhead vs plain TRL: padded batches, every trace truncated at 512 tokens
    same = ["train.max_length=512", "train.length_policy=truncate", f"train.per_device_batch_size={batch}",
            f"train.max_steps={opts.steps}", f"train.learning_rate={lr}", f"train.logging_steps={opts.steps}"]
    ours, plain, ours_cpu, plain_cpu = [], [], [], []
    for i in range(opts.repeats):  # interleaved, order alternating, so machine noise hits both alike
        def run_ours(i=i):
            clock = CpuClock()
            tps, stats = dlcot_train(data, tmp / f"ours{i}", tmp / "runs", *same, clock=clock)
            ours.append(tps)
            ours_cpu.append(stats["tokens_seen"] / clock.seconds)

        def run_plain(i=i):
            tps, tpcpu = plain_trl(model_dir, data, tmp / f"plain{i}", max_length=512, batch=batch,
                                   steps=opts.steps, lr=lr)
            plain.append(tps)
            plain_cpu.append(tpcpu)

        for step in ((run_ours, run_plain) if i % 2 == 0 else (run_plain, run_ours)):
            step()
    print(f"dlcot.train vs plain TRL SFTTrainer (tiny qwen2, {opts.traces} Sky-T1 traces truncated to 512 tokens, "
          f"batch {batch}, {opts.steps} steps, best of {opts.repeats}):")
    print(f"  dlcot {max(ours):,.0f} tok/s  plain TRL {max(plain):,.0f} tok/s  ratio {max(ours) / max(plain):.2f} "
          "(target >= 1.0)")
    print(f"  per CPU-second (robust to other jobs): dlcot {max(ours_cpu):,.0f}  plain TRL {max(plain_cpu):,.0f}  "
          f"ratio {max(ours_cpu) / max(plain_cpu):.2f}")

    # 2. padding-free packing vs padded on variable-length traces: synthetic R1-style traces (slips, abandoned
    # approaches, re-checks) of ~300-1000 tokens, over-long ones dropped. The student here is 256 wide so that,
    # as in real students, matmuls dominate attention: on CPU (no varlen flash-attention kernels) attention over a
    # packed row is the full causal block-diagonal product, and on the 64-wide test model that cost alone decides.
    from dlcot.data.synthetic import synthetic_traces

    var_data = tmp / "synthetic.jsonl"
    var_data.write_text("".join(json.dumps(t.to_trace_record()) + "\n" for t in synthetic_traces(opts.var_traces, 0)))
    wide = tiny_model_dir("qwen", tmp / "runs", hidden_size=256, intermediate_size=768)
    var = [f"student.model={wide}", "train.max_length=1024", "train.length_policy=drop", f"train.learning_rate={lr}",
           "train.epochs=1", "train.max_steps=-1", "train.logging_steps=1000"]
    padded, packed = [], []
    for i in range(opts.repeats):
        tps, stats = dlcot_train(var_data, tmp / f"padded{i}", tmp / "runs", *var,
                                 f"train.per_device_batch_size={batch}")
        padded.append(tps)
        # one packed row of 1024 tokens per step: padding-free flattens a batch into one sequence, whose attention
        # costs (batch tokens)^2 without varlen kernels
        packed.append(dlcot_train(var_data, tmp / f"packed{i}", tmp / "runs", *var, "train.packing=true",
                                  "train.padding_free=true", "train.per_device_batch_size=1")[0])
    print(f"padding-free packing vs padded (256-wide tiny qwen2, {stats['n_kept']} synthetic traces of <= 1024 tokens, "
          f"{stats['dataset_tokens']:,} tokens, padded batches of {batch} vs packed rows of 1024, one epoch, "
          f"best of {opts.repeats}):")
    print(f"  packed {max(packed):,.0f} tok/s  padded {max(padded):,.0f} tok/s  ratio {max(packed) / max(padded):.2f} "
          "(target >= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
