"""Settings of the `mcts` section that the stage derives (their values are checked at composition by
`dlcot.schema.MctsConfig.validate`)."""
from __future__ import annotations

from omegaconf import DictConfig

from dlcot.schema import SFT_LENGTHS


def sft_quantile(m: DictConfig) -> float:
    """The nearest-rank quantile of a problem's correct-path lengths that becomes its SFT path."""
    return SFT_LENGTHS.get(m.sft_length, m.length_quantile)
