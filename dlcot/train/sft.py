"""`dlcot train` with `train.stage=sft`: thin glue over TRL's `SFTTrainer`.

config → SFT data (`data.py`: conversations, length policy, template checks) → `SFTConfig` (built here, at this
one boundary, from our `train` group) → the run `fit.py` shares with DPO (student + LoRA, resume, outputs).
"""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from dlcot.config import to_dict
from dlcot.errors import ConfigError
from dlcot.train.data import build_sft_data
from dlcot.train.fit import common_args, fit

log = logging.getLogger(__name__)


def sft_config(cfg: DictConfig, out_dir: Path):
    """TRL `SFTConfig` from our `train` group: the only place dlcot's settings become TRL's."""
    from trl import SFTConfig

    t = cfg.train
    kwargs = common_args(cfg, out_dir)
    kwargs.update(packing=t.packing, packing_strategy=t.packing_strategy, padding_free=t.padding_free,
                  assistant_only_loss=True)
    if t.padding_free and kwargs["use_cpu"]:
        log.warning("train.padding_free on CPU: without varlen flash-attention kernels a flattened batch costs "
                    "(batch tokens)^2 in attention; keep per_device_batch_size small or use packing with 1 row")
    if t.padding_free and not t.packing:
        # TRL does not enforce max_length without packing when padding-free; our length policy must have done it
        # (length_policy=truncate is refused at composition, TrainConfig.validate).
        kwargs["max_length"] = None
    kwargs.update(to_dict(t.trl))
    return SFTConfig(**kwargs)


def run(cfg: DictConfig, callbacks: list | None = None) -> Path:
    """Train the student on the SFT data of `cfg.train.data`; returns the run directory."""
    from trl import SFTTrainer

    if cfg.train.stage != "sft":
        raise ConfigError(f"train.stage={cfg.train.stage!r}: dlcot.train.sft runs stage sft (`dlcot train` "
                          "picks the stage's module)")
    return fit(cfg, sft_config, build_sft_data, SFTTrainer, callbacks)
