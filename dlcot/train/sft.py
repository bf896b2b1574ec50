"""`dlcot train` (SFT stage): thin glue over TRL's `SFTTrainer`.

config → SFT data (length policy, template checks) → student (+ LoRA) → `SFTConfig` (built here, at this one
boundary, from our `train` group) → train (resuming from the run directory's last checkpoint with
`train.resume=auto`) → final model + tokenizer (+ chat_template.jinja) + `train_stats.json` + `rejected.jsonl`
+ a short model card in the run directory. LoRA runs are merged into a full model there by default
(`train.lora.merge`), the adapter kept in `adapter/`. Only rank 0 writes our files; TRL/transformers guard
their own.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dlcot.config import is_rank0, prepare_run_dir, run_dir, to_dict
from dlcot.errors import ConfigError
from dlcot.records import atomic_write_json, atomic_write_text, write_jsonl
from dlcot.tracking import Tracker, report_to
from dlcot.train.data import SFTData, build_sft_data
from dlcot.train.models import (
    load_model,
    load_tokenizer,
    merge_adapter,
    peft_config,
    quantization_config,
    resolve_model_path,
)

log = logging.getLogger(__name__)


def sft_config(cfg: DictConfig, out_dir: Path):
    """TRL `SFTConfig` from our `train` group: the only place dlcot's settings become TRL's."""
    import torch
    from trl import SFTConfig

    t = cfg.train
    use_cpu = bool(t.use_cpu) or not torch.cuda.is_available()
    checkpointing = bool(t.gradient_checkpointing) and not use_cpu
    if not 0 <= t.warmup_ratio < 1:
        raise ConfigError(f"train.warmup_ratio={t.warmup_ratio}: a fraction of the training steps in [0, 1)")
    if t.bf16 and use_cpu:
        log.info("train.bf16 ignored on CPU (fp32 training)")
    kwargs: dict[str, Any] = dict(
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
        packing=t.packing, packing_strategy=t.packing_strategy, padding_free=t.padding_free,
        assistant_only_loss=True,
    )
    if t.padding_free and use_cpu:
        log.warning("train.padding_free on CPU: without varlen flash-attention kernels a flattened batch costs "
                    "(batch tokens)^2 in attention; keep per_device_batch_size small or use packing with 1 row")
    if t.padding_free and not t.packing:
        # TRL does not enforce max_length without packing when padding-free; our length policy must have done it.
        if t.length_policy == "truncate":
            raise ConfigError("train.padding_free without train.packing does not truncate: use "
                              "train.length_policy=drop|error, or train.packing=true")
        kwargs["max_length"] = None
    kwargs.update(to_dict(t.extra))
    return SFTConfig(**kwargs)


def resume_checkpoint(train: DictConfig, out_dir: Path) -> str | None:
    """`auto`: the last `checkpoint-N` of this run directory (None when there is none); `never`; or a path."""
    from transformers.trainer_utils import get_last_checkpoint

    if train.resume == "never":
        return None
    if train.resume == "auto":
        return get_last_checkpoint(str(out_dir)) if out_dir.is_dir() else None
    path = Path(train.resume)
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(f"train.resume={train.resume!r}: not a checkpoint directory (no trainer_state.json); "
                          "use auto, never, or a checkpoint-N directory")
    return str(path)


def loss_summary(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """Loss curve as (step, loss) points plus first / last / min, for comparing runs without wandb."""
    curve = [[h["step"], h["loss"]] for h in log_history if "loss" in h]
    losses = [loss for _, loss in curve]
    return {"curve": curve, "first": losses[0] if losses else None, "last": losses[-1] if losses else None,
            "min": min(losses) if losses else None}


def write_outputs(cfg: DictConfig, out_dir: Path, data: SFTData, trainer, metrics: dict[str, Any],
                  tokens_start: int, model_path: str) -> dict[str, Any]:
    """train_stats.json + rejected.jsonl + README.md (rank 0); the trainer saved model and tokenizer."""
    state = trainer.state
    tokens = int(state.num_input_tokens_seen)
    runtime = float(metrics.get("train_runtime", 0.0))
    stats = {
        **data.stats,
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
    return "\n".join([
        f"# {cfg.student.name} distilled with dlcot (SFT)", "",
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


def run(cfg: DictConfig, callbacks: list | None = None) -> Path:
    """Train the student on the SFT data of `cfg.train.data`; returns the run directory."""
    from trl import SFTTrainer

    if cfg.train.stage != "sft":
        raise ConfigError(f"train.stage={cfg.train.stage!r}: `dlcot train` runs stage sft (DPO has its own command)")
    quantization_config(cfg.train)  # QLoRA without a GPU fails here, before any loading
    args = sft_config(cfg, run_dir(cfg))  # and bad option combinations here
    model_path = resolve_model_path(cfg.student, cfg.runs_dir)
    tokenizer = load_tokenizer(cfg.student, model_path)
    data = build_sft_data(cfg, tokenizer)  # every data/template error is raised before the model loads
    out_dir = prepare_run_dir(cfg)
    model = load_model(cfg.student, cfg.train, model_path, tokenizer)
    checkpoint = resume_checkpoint(cfg.train, out_dir)
    with Tracker(cfg, out_dir, "train") as tracker:
        trainer = SFTTrainer(model=model, args=args, train_dataset=data.to_dataset(), processing_class=tokenizer,
                             peft_config=peft_config(cfg.student, cfg.train), callbacks=callbacks)
        tokens_start = 0
        if checkpoint:
            log.info("resuming from %s", checkpoint)
            tokens_start = _tokens_seen_at(checkpoint)
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


def _tokens_seen_at(checkpoint: str) -> int:
    import json

    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return int(state.get("num_input_tokens_seen", 0))
