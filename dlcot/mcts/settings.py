"""Checks of the `mcts` group that need the node kinds (`dlcot.mcts.tree.KINDS`), run by `dlcot.config.compose`
on every composed config: a bad value stops before any model loads, with the key named. The choices, ranges and
stop-threshold order are the schema's (`dlcot.schema.MctsConfig.validate`)."""
from __future__ import annotations

from omegaconf import DictConfig

from dlcot.errors import ConfigError
from dlcot.mcts.tree import KINDS, check_transfer


def check_settings(m: DictConfig) -> None:
    check_transfer(m.transfer, answers_planned=m.reward == "answer_nodes")
    for group in ("tags", "phrases", "roles"):
        unknown = [k for k in m[group] if k not in KINDS]
        if unknown:
            raise ConfigError(f"mcts.{group}: {unknown} are not node kinds ({', '.join(KINDS)})")
    missing = [k for k in KINDS if not m.tags.get(k)]
    if missing:
        raise ConfigError(f"mcts.tags: no tag for {missing}; every kind's text is wrapped in <tag>...</tag>")
    if m.backtrack_under not in KINDS:
        raise ConfigError(f"mcts.backtrack_under={m.backtrack_under!r}: not a node kind ({', '.join(KINDS)})")
