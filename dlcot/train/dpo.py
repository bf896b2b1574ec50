"""`dlcot train` with `train.stage=dpo`: Marco-o1 v2's fine-grained DPO over TRL's `DPOTrainer`.

The objective is TRL's, configured from our `train` group at this one boundary:
- conservative DPO (cDPO, `train.label_smoothing` ε), for pairs whose preference may be wrong (a verifier's
  binary reward): L = −(1−ε)·log σ(βh) − ε·log σ(−βh). TRL 1.16's `sigmoid` loss ignores `label_smoothing`, and
  its `robust` loss is R = [−(1−ε)·log σ(βh) + ε·log σ(−βh)] / (1−2ε), so cDPO is exactly the public combination
  `loss_type=["sigmoid", "robust"]`, `loss_weights=[2(1−ε), −(1−2ε)]` (`cdpo_weights`; pinned by a test that
  recomputes the logged loss from the logged margins);
- joint post-training, L = L_DPO + α·L_SFT: TRL's `loss_type=["sigmoid", "sft"]`, `loss_weights=[1, α]`
  (`train.sft_alpha`), the SFT term being the NLL of the chosen completion;
- common-prefix masking (`train.prefix_masking`): done in the data (`pairs.py`), which moves the shared thoughts
  into the prompt, so no trainer internals are overridden.
The reference model is the starting student (`student.model`, usually the SFT run's directory); with LoRA,
TRL uses the base with the adapter disabled.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from dlcot.config import to_dict
from dlcot.errors import ConfigError
from dlcot.train.fit import common_args, fit
from dlcot.train.pairs import build_pair_data


def cdpo_weights(eps: float) -> list[float]:
    """Weights of TRL's (sigmoid S, robust R) losses that make cDPO: with F = −log σ(−βh),
    R = [(1−ε)·S − ε·F] / (1−2ε), so 2(1−ε)·S − (1−2ε)·R = (1−ε)·S + ε·F."""
    return [2 * (1 - eps), -(1 - 2 * eps)]


def dpo_config(cfg: DictConfig, out_dir: Path):
    """TRL `DPOConfig` from our `train` group: the only place dlcot's settings become TRL's."""
    from trl import DPOConfig

    t = cfg.train  # beta, label_smoothing, packing, padding_free: checked at composition (TrainConfig.validate)
    losses, weights = ["sigmoid"], [1.0]
    if t.label_smoothing:
        losses, weights = ["sigmoid", "robust"], cdpo_weights(float(t.label_smoothing))
    if t.sft_alpha:
        losses.append("sft")
        weights.append(float(t.sft_alpha))
    kwargs = common_args(cfg, out_dir)
    kwargs.update(beta=t.beta, label_smoothing=t.label_smoothing, loss_type=losses, loss_weights=weights)
    kwargs.update(to_dict(t.trl))
    return DPOConfig(**kwargs)


def run(cfg: DictConfig, callbacks: list | None = None) -> Path:
    """Train the student on the preference pairs of `cfg.train.data`; returns the run directory."""
    from trl import DPOTrainer

    if cfg.train.stage != "dpo":
        raise ConfigError(f"train.stage={cfg.train.stage!r}: dlcot.train.dpo runs stage dpo")
    return fit(cfg, dpo_config, build_pair_data, DPOTrainer, callbacks)
