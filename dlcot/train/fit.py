"""What an SFT and a DPO run share: the TrainingArguments part of TRL's configs, resume, the run itself and the
files it leaves (model + tokenizer, `train_stats.json`, `rejected.jsonl`, a model card).

A run: config checks → student tokenizer → the stage's data (every data and template error is raised here,
before the model loads) → student (+ LoRA) → TRL trainer → train, resuming from the run directory's last
checkpoint with `train.resume=auto` → final model + tokenizer (LoRA merged by default, `train.lora.merge`) and
our files. Only rank 0 writes our files; TRL/transformers guard their own.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig

from dlcot.config import is_rank0, prepare_run_dir, run_dir
from dlcot.errors import ConfigError
from dlcot.records import Reject, atomic_write_json, atomic_write_text, write_jsonl
from dlcot.tracking import Tracker, report_to
from dlcot.train.models import (
    check_context,
    load_model,
    load_student_tokenizer,
    merge_adapter,
    peft_config,
    quantization_config,
    resolve_model_path,
)

log = logging.getLogger(__name__)


class StageData(Protocol):
    """Training examples of one stage (SFTData, PairData) with the inputs left out and counts for the stats."""
    rejects: list[Reject]
    stats: dict[str, Any]

    def to_dataset(self): ...


def common_args(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """The TrainingArguments settings of `SFTConfig` and `DPOConfig` from our `train` group."""
    import torch

    t = cfg.train
    use_cpu = bool(t.use_cpu) or not torch.cuda.is_available()
    checkpointing = bool(t.gradient_checkpointing) and not use_cpu
    if t.bf16 and use_cpu:
        log.info("train.bf16 ignored on CPU (fp32 training)")
    return dict(
        output_dir=str(out_dir), run_name=out_dir.name, seed=cfg.seed, data_seed=cfg.seed,
        num_train_epochs=t.epochs, max_steps=t.max_steps, learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type, warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm, optim=t.optim,
        per_device_train_batch_size=t.per_device_batch_size, gradient_accumulation_steps=t.gradient_accumulation_steps,
        # TRL's deprecated `gradient_checkpointing` alias defaults to True and wins over `activation_checkpointing`
        # unless both are given: pass both, or CPU runs silently recompute every activation.
        gradient_checkpointing=checkpointing, activation_checkpointing=checkpointing,
        bf16=bool(t.bf16) and not use_cpu, use_cpu=use_cpu, dataloader_num_workers=t.dataloader_num_workers,
        logging_steps=t.logging_steps, logging_first_step=True, save_steps=t.save_steps,
        save_total_limit=t.save_total_limit, report_to=report_to(cfg),
        include_num_input_tokens_seen="non_padding",
        max_length=t.max_length, truncation_mode="keep_start",
    )


def complete(checkpoint: Path) -> bool:
    """A checkpoint the Trainer finished saving: it writes `trainer_state.json` last (after weights, optimizer,
    scheduler and RNG states), so a kill during a save leaves a folder without a readable one."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def resume_checkpoint(train: DictConfig, out_dir: Path) -> str | None:
    """`auto`: the last complete `checkpoint-N` of this run directory (None when there is none; incomplete ones,
    cut by a kill during a save, are skipped and logged); `never`; or a path. The run directory guard
    (`dlcot.rundir`, via `prepare_run_dir`) has already refused checkpoints of another config."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if train.resume == "never":
        return None
    if train.resume == "auto":
        pattern = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
        found = [p for p in out_dir.iterdir() if p.is_dir() and pattern.match(p.name)] if out_dir.is_dir() else []
        for path in sorted(found, key=lambda p: int(pattern.match(p.name).group(1)), reverse=True):
            if complete(path):
                return str(path)
            log.warning("skipping %s: incomplete (killed during its save?)", path)
        return None
    path = Path(train.resume)
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(f"train.resume={train.resume!r}: not a checkpoint directory (no trainer_state.json); "
                          "use auto, never, or a checkpoint-N directory")
    return str(path)


def fit(cfg: DictConfig, make_args: Callable[[DictConfig, Path], Any],
        build_data: Callable[[DictConfig, Any], StageData], trainer_cls: type,
        callbacks: list | None = None) -> Path:
    """Train `cfg.student` with `trainer_cls` (a TRL trainer) on `build_data`'s examples; returns the run dir."""
    quantization_config(cfg.train)  # QLoRA without a GPU fails here, before any loading
    check_context(cfg.student, cfg.train)
    args = make_args(cfg, run_dir(cfg))  # and bad option combinations here
    model_path = resolve_model_path(cfg.student, cfg.runs_dir)
    tokenizer = load_student_tokenizer(cfg.student, model_path)
    data = build_data(cfg, tokenizer)  # every data/template error is raised before the model loads
    out_dir = prepare_run_dir(cfg)
    model = load_model(cfg.student, cfg.train, model_path, tokenizer)
    checkpoint = resume_checkpoint(cfg.train, out_dir)
    with Tracker(cfg, out_dir, "train") as tracker:
        trainer = trainer_cls(model=model, args=args, train_dataset=data.to_dataset(), processing_class=tokenizer,
                              peft_config=peft_config(cfg.student, cfg.train), callbacks=callbacks)
        tokens_start = 0
        if checkpoint:
            log.info("resuming from %s", checkpoint)
            state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
            tokens_start = int(state.get("num_input_tokens_seen", 0))
        started = time.time()
        metrics = trainer.train(resume_from_checkpoint=checkpoint).metrics
        log.info("trained %d steps in %.1fs", trainer.state.global_step, time.time() - started)
        trainer.save_model(str(out_dir))
        if is_rank0():
            tokenizer.save_pretrained(str(out_dir))
            if cfg.train.lora.enabled and cfg.train.lora.merge:
                merge_adapter(out_dir, cfg.student, model_path, tokenizer)
            stats = write_outputs(cfg, out_dir, data, trainer, metrics, tokens_start, model_path)
            tracker.summary({k: v for k, v in stats.items() if isinstance(v, (int, float))})
    return out_dir


def loss_summary(log_history: list[dict[str, Any]], key: str = "loss") -> dict[str, Any]:
    """A logged value's curve as (step, value) points plus first / last / min, for comparing runs without wandb."""
    curve = [[h["step"], h[key]] for h in log_history if key in h]
    values = [v for _, v in curve]
    return {"curve": curve, "first": values[0] if values else None, "last": values[-1] if values else None,
            "min": min(values) if values else None}


# DPO's logged preference figures, summarised like the loss (`rewards/margins` should grow, accuracies reach 1)
PREFERENCE_KEYS = ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")


def write_outputs(cfg: DictConfig, out_dir: Path, data: StageData, trainer, metrics: dict[str, Any],
                  tokens_start: int, model_path: str) -> dict[str, Any]:
    """train_stats.json + rejected.jsonl + README.md (rank 0); the trainer saved model and tokenizer."""
    state = trainer.state
    tokens = int(state.num_input_tokens_seen)
    runtime = float(metrics.get("train_runtime", 0.0))
    stats = {
        **data.stats, "stage": cfg.train.stage,
        "tokens_seen": tokens, "tokens_per_second": (tokens - tokens_start) / runtime if runtime else None,
        "train_runtime_s": runtime, "global_step": state.global_step, "epochs": state.epoch,
        "loss": loss_summary(state.log_history),
        "teacher_family": cfg.teacher.family, "student_family": cfg.student.family,
        "homologous": cfg.teacher.family == cfg.student.family,
        "student": cfg.student.name, "model": cfg.student.model, "model_path": model_path,
        "lora": bool(cfg.train.lora.enabled), "lora_merged": bool(cfg.train.lora.enabled and cfg.train.lora.merge),
        "packing": bool(cfg.train.packing),
        "padding_free": bool(cfg.train.padding_free), "world_size": trainer.args.world_size,
    }
    if cfg.train.stage == "dpo":
        stats["preference"] = {k: loss_summary(state.log_history, k) for k in PREFERENCE_KEYS}
    atomic_write_json(out_dir / "train_stats.json", stats)
    write_jsonl(out_dir / "rejected.jsonl", [{"id": r.id, "reason": r.reason, "detail": r.detail}
                                             for r in data.rejects])
    atomic_write_text(out_dir / "README.md", model_card(cfg, stats))
    return stats


def lora_note(stats: dict[str, Any]) -> str:
    if not stats["lora"]:
        return "off"
    return "on, merged into the weights here (adapter in adapter/)" if stats["lora_merged"] else "on (adapter only)"


def model_card(cfg: DictConfig, stats: dict[str, Any]) -> str:
    pair = "homologous" if stats["homologous"] else "nonhomologous"
    loss = stats["loss"]
    t = cfg.train
    objective = ("SFT" if t.stage == "sft" else
                 f"DPO (beta {t.beta}, label smoothing {t.label_smoothing}, + {t.sft_alpha} x SFT, common-prefix "
                 f"masking {'on' if t.prefix_masking else 'off'})")
    return "\n".join([
        f"# {cfg.student.name} distilled with dlcot ({objective})", "",
        f"- base model: `{cfg.student.model}` (family {cfg.student.family}); chat template "
        f"`{cfg.student.chat_template}` (saved as chat_template.jinja), thoughts in "
        f"`{cfg.student.think_open}...{cfg.student.think_close}`",
        f"- teacher family: {cfg.teacher.family} ({pair} pair); data: `{stats['data']}`",
        f"- examples: {stats['n_kept']} kept of {stats['n_input']} (rejected: {stats['reject_reasons'] or 'none'}; "
        f"length policy {stats['length_policy']} at max_length {stats['max_length']}, "
        f"{stats['truncated']} truncated)",
        f"- training: {stats['global_step']} steps, {stats['tokens_seen']} tokens, "
        f"LoRA {lora_note(stats)}; loss {loss['first']:.4g} → {loss['last']:.4g}",
        "", "Resolved config: `config.yaml`; figures: `train_stats.json`.", ""])
