"""Experiment tracking: wandb when `wandb.mode` is online/offline, nothing at all when disabled (the default).

Stages log through `Tracker` so tests never touch the network; TRL trainers use `report_to(cfg)` and the
environment set by `Tracker` (project, group, run directory) so their logs land in the same wandb run family.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlcot.config import is_rank0


def report_to(cfg: DictConfig) -> list[str]:
    """TRL/transformers `report_to` value for this config."""
    return ["wandb"] if cfg.wandb.mode != "disabled" and is_rank0() else []


class Tracker:
    """A wandb run for one stage (rank 0 only), or a no-op. Use as a context manager."""

    def __init__(self, cfg: DictConfig, run_dir: str | Path, job_type: str):
        self.run = None
        mode = cfg.wandb.mode
        if mode == "disabled" or not is_rank0():
            return
        import wandb

        os.environ.setdefault("WANDB_PROJECT", cfg.wandb.project)
        os.environ["WANDB_DIR"] = str(run_dir)
        self.run = wandb.init(
            mode=mode, project=cfg.wandb.project, entity=cfg.wandb.entity, group=cfg.wandb.group or cfg.get("recipe"),
            job_type=job_type, tags=list(cfg.wandb.tags), dir=str(run_dir), name=f"{job_type}-{Path(run_dir).name}",
            config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
        )

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def summary(self, metrics: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(metrics)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()
