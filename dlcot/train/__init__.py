"""Training stage: SFT/DPO of students on distilled long chain-of-thought, thin glue over TRL."""
from __future__ import annotations

import importlib
from pathlib import Path

from omegaconf import DictConfig

STAGES = {"sft": "dlcot.train.sft", "dpo": "dlcot.train.dpo"}


def run(cfg: DictConfig, callbacks: list | None = None) -> Path:
    """`dlcot train`: the stage `train.stage` names (sft on traces, dpo on preference pairs)."""
    return importlib.import_module(STAGES[cfg.train.stage]).run(cfg, callbacks)
