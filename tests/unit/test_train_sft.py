"""`dlcot train` on tiny students: every trainable parameter moves, overfitting works, resume is exact."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from train_fixtures import ParamWatch, StopAfter, traces, write_traces
from transformers import TrainerCallback

from dlcot.config import compose
from dlcot.errors import ConfigError
from dlcot.train.sft import run


class FinalWeights(TrainerCallback):
    """The parameters of the trained model when training ends (what the run directory must hold)."""

    def on_train_end(self, args, state, control, model=None, **kw):
        self.weights = {n: p.detach().clone() for n, p in model.named_parameters()}


class StepCount(TrainerCallback):
    def __init__(self):
        self.steps = 0

    def on_step_end(self, args, state, control, **kw):
        self.steps += 1


def _train(tmp_path: Path, name: str, *overrides: str, callbacks=None, data: Path | None = None) -> dict:
    data = data or write_traces(tmp_path / "traces.jsonl", traces(8))
    cfg = compose("train", ["train=sft_cpu_tiny", f"train.data={data}", f"output={tmp_path / name}",
                            f"runs_dir={tmp_path.parent / 'runs'}", *overrides])
    out = run(cfg, callbacks=callbacks)
    return json.loads((out / "train_stats.json").read_text())


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("student", ["tiny_qwen2", "tiny_llama"])
def test_training_moves_every_trainable_parameter(tmp_path, student, lora):
    watch, final = ParamWatch(), FinalWeights()
    stats = _train(tmp_path, "run", f"student={student}", f"train.lora.enabled={lora}", "train.max_steps=3",
                   "train.learning_rate=1e-2", callbacks=[watch, final])
    losses = [loss for _, loss in stats["loss"]["curve"]]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert watch.before and not watch.unchanged, f"unchanged: {watch.unchanged}"
    assert all(("lora_" in n) == lora for n in watch.before), "LoRA must train exactly the adapters"
    assert stats["tokens_seen"] > 0 and stats["tokens_per_second"] > 0
    assert stats["homologous"] == (student == "tiny_qwen2")  # teacher family is qwen
    out = tmp_path / "run"
    for name in ("train_stats.json", "README.md", "config.yaml", "chat_template.jinja", "rejected.jsonl"):
        assert (out / name).is_file(), name
    assert (out / "model.safetensors").is_file()  # LoRA runs are merged into a full model (train.lora.merge)
    assert (out / "adapter" / "adapter_config.json").is_file() == lora
    # the run directory is a model directory: `dlcot eval model=<run dir>` loads it (PEFT adapters included)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = dict(AutoModelForCausalLM.from_pretrained(out).named_parameters())
    base = dict(AutoModelForCausalLM.from_pretrained(stats["model_path"]).named_parameters())
    assert loaded.keys() == base.keys() and not any("lora_" in n for n in loaded)
    assert any(not torch.equal(loaded[n], base[n]) for n in base), "the run directory holds the untrained model"
    if not lora:  # exactly the weights training ended with (LoRA: the merge is checked in the next test)
        assert all(torch.equal(loaded[n], w) for n, w in final.weights.items())
    assert "{%- generation" in AutoTokenizer.from_pretrained(out).chat_template


def test_lora_run_is_merged_into_a_full_model(tmp_path):
    """The merged weights compute what base + adapter compute (so eval and vLLM load the run dir as a plain
    model); `train.lora.merge=false` leaves the adapter itself as the output."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    lora = ("student=tiny_qwen2", "train.lora.enabled=true", "train.max_steps=3", "train.learning_rate=1e-2")
    stats = _train(tmp_path, "merged", *lora)
    out = tmp_path / "merged"
    assert stats["lora_merged"] and not (out / "adapter_config.json").exists()
    ids = torch.arange(3, 40)[None]
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(stats["model_path"])
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(stats["model_path"]), out / "adapter")
    with torch.no_grad():
        logits_merged, logits_base, logits_adapted = (m.eval()(ids).logits for m in (merged, base, adapted))
    assert torch.allclose(logits_merged, logits_adapted, atol=1e-4)
    assert not torch.allclose(logits_merged, logits_base, atol=1e-3), "the adapter was trained: weights must move"

    stats = _train(tmp_path, "adapter_only", *lora, "train.lora.merge=false")
    out = tmp_path / "adapter_only"
    assert not stats["lora_merged"]
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()


def test_overfits_eight_examples(tmp_path):
    stats = _train(tmp_path, "run", "student=tiny_qwen2", "train.max_steps=40", "train.per_device_batch_size=8",
                   "train.max_length=192", "train.learning_rate=1e-2", "train.logging_steps=1")
    losses = [loss for _, loss in stats["loss"]["curve"]]
    assert losses[-1] < 0.35 * losses[0], losses


def test_resume_gives_identical_losses(tmp_path):
    """torchtune's check: 4 steps straight == 2 steps, kill, `resume=auto` in the same run dir, 2 more."""
    data = write_traces(tmp_path / "traces.jsonl", traces(8))
    common = ("student=tiny_llama", "train.max_steps=4", "train.save_steps=2", "train.lora.enabled=false")
    straight = _train(tmp_path, "straight", *common, data=data)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, "resumed", *common, data=data, callbacks=[StopAfter(2)])
    assert (tmp_path / "resumed" / "checkpoint-2").is_dir()
    counter = StepCount()
    resumed = _train(tmp_path, "resumed", *common, data=data, callbacks=[counter])
    assert counter.steps == 2, "the second session must continue from checkpoint-2, not start over"
    assert resumed["loss"]["curve"] == straight["loss"]["curve"]
    assert resumed["tokens_seen"] == straight["tokens_seen"]


def test_qlora_on_cpu_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="QLoRA.*GPU"):
        _train(tmp_path, "run", "train=sft_qlora", "train.use_cpu=true")


def test_sft_config_boundary_on_cpu(tmp_path):
    """The one place our `train` group becomes TRL's SFTConfig: CPU-safe settings and pass-through extras."""
    from dlcot.train.sft import sft_config

    cfg = compose("train", ["train=sft", "train.use_cpu=true", "train.max_length=321", "+train.trl.seed=7"])
    args = sft_config(cfg, tmp_path)
    assert args.use_cpu and not args.bf16 and not args.activation_checkpointing
    assert args.assistant_only_loss and args.max_length == 321 and args.seed == 7
    assert args.gradient_accumulation_steps == cfg.train.gradient_accumulation_steps
    free = sft_config(compose("train", ["train.use_cpu=true", "train.padding_free=true", "train.length_policy=drop"]),
                      tmp_path)
    assert free.padding_free and free.max_length is None  # our length policy enforces max_length instead
    with pytest.raises(ConfigError, match="does not truncate"):
        sft_config(compose("train", ["train.padding_free=true", "train.length_policy=truncate"]), tmp_path)


@pytest.mark.parametrize("overrides, error", [
    (["train.max_length=8"], "no usable SFT examples"),  # empty after the length filter
    (["student.model=tiny:gpt"], "unknown tiny family"),
    (["train.length_policy=squeeze"], "length_policy"),
], ids=["empty_after_filter", "unknown_tiny_family", "bad_length_policy"])
def test_bad_input_fails_before_training_starts(tmp_path, monkeypatch, overrides, error):
    import trl

    from dlcot.errors import DlcotError

    def never(*args, **kwargs):
        raise AssertionError("SFTTrainer was built: the error came too late")

    monkeypatch.setattr(trl, "SFTTrainer", never)
    with pytest.raises(DlcotError, match=error):
        _train(tmp_path, "run", "student=tiny_qwen2", *overrides)
    assert not (tmp_path / "run").exists(), "nothing may be written for a run that cannot start"
