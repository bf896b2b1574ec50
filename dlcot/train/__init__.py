"""Training stage: SFT/DPO of students on distilled long chain-of-thought, thin glue over TRL."""
from __future__ import annotations

import importlib
from pathlib import Path

from omegaconf import DictConfig

from dlcot.errors import ConfigError

STAGES = {"sft": "dlcot.train.sft", "dpo": "dlcot.train.dpo"}


def run(cfg: DictConfig, callbacks: list | None = None) -> Path:
    """`dlcot train`: the stage `train.stage` names (sft on traces, dpo on preference pairs)."""
    if cfg.train.stage not in STAGES:
        raise ConfigError(f"train.stage={cfg.train.stage!r}: use one of {', '.join(STAGES)}")
    return importlib.import_module(STAGES[cfg.train.stage]).run(cfg, callbacks)
