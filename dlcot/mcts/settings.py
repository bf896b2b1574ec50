"""Checks of the `mcts` group, run when a `dlcot mcts` config is composed: a bad value stops before any model
loads, with the key named."""
from __future__ import annotations

from omegaconf import DictConfig

from dlcot.errors import ConfigError
from dlcot.mcts.tree import KINDS, check_transfer

CHOICES = {"reward": ("answer_nodes", "probe_every_node"), "writer_mode": ("roles", "random"),
           "reflection": ("fixed", "generated", "generated_with_answer", "none")}
PAIR_CHOICES = {"prefix": ("min", "max"), "length": ("balanced", "any")}
# the paper's short / mid / long SFT path choices (Thoughts Length Balance) as nearest-rank quantiles
SFT_LENGTHS = {"shortest": 0.0, "median": 0.5, "longest": 1.0}


def sft_quantile(m: DictConfig) -> float:
    """The nearest-rank quantile of a problem's correct-path lengths that becomes its SFT path."""
    return SFT_LENGTHS.get(m.sft_length, m.length_quantile)


def check_settings(m: DictConfig) -> None:
    for key, allowed in CHOICES.items():
        if m[key] not in allowed:
            raise ConfigError(f"mcts.{key}={m[key]!r}: use one of {', '.join(allowed)}")
    for key, allowed in PAIR_CHOICES.items():
        if m.pairs[key] not in allowed:
            raise ConfigError(f"mcts.pairs.{key}={m.pairs[key]!r}: use one of {', '.join(allowed)}")
    check_transfer(m.transfer, answers_planned=m.reward == "answer_nodes")
    for group in ("tags", "phrases", "roles"):
        unknown = [k for k in m[group] if k not in KINDS]
        if unknown:
            raise ConfigError(f"mcts.{group}: {unknown} are not node kinds ({', '.join(KINDS)})")
    missing = [k for k in KINDS if not m.tags.get(k)]
    if missing:
        raise ConfigError(f"mcts.tags: no tag for {missing}; every kind's text is wrapped in <tag>...</tag>")
    bad_roles = {k: w for k, w in m.roles.items() if w < 0}
    if bad_roles:
        raise ConfigError(f"mcts.roles: {bad_roles}: a writer index is >= 0 (0 = teacher.model, then mcts.writers)")
    if m.backtrack_under not in KINDS:
        raise ConfigError(f"mcts.backtrack_under={m.backtrack_under!r}: not a node kind ({', '.join(KINDS)})")
    if "{problem}" not in m.base_prompt:
        raise ConfigError("mcts.base_prompt: must contain {problem}, where the problem goes")
    s = m.stop
    if s.solved < 1 or s.enough < 0 or s.max_rollouts < 1 or s.max_nodes < 2 or s.enough_after < 0:
        raise ConfigError("mcts.stop: solved and max_rollouts >= 1, max_nodes >= 2, enough and enough_after >= 0")
    if s.enough > s.solved:
        raise ConfigError(f"mcts.stop.enough={s.enough} > mcts.stop.solved={s.solved}: the thresholds are out of "
                          "order (enough correct <= solved)")
    if s.enough_after > s.give_up_after:
        raise ConfigError(f"mcts.stop.enough_after={s.enough_after} > mcts.stop.give_up_after={s.give_up_after}: "
                          "the thresholds are out of order (a search gives up later than it may end with enough)")
    if not 0 <= m.length_quantile <= 1:
        raise ConfigError(f"mcts.length_quantile={m.length_quantile}: 0 (shortest correct path) .. 1 (longest)")
    if m.sft_length not in ("quantile", *SFT_LENGTHS):
        raise ConfigError(f"mcts.sft_length={m.sft_length!r}: use one of quantile, {', '.join(SFT_LENGTHS)}")
    if m.sft_length != "quantile" and m.length_quantile not in (0.0, SFT_LENGTHS[m.sft_length]):
        raise ConfigError(f"mcts.sft_length={m.sft_length} is quantile {SFT_LENGTHS[m.sft_length]}, but "
                          f"mcts.length_quantile={m.length_quantile}: set one of them (sft_length=quantile to use "
                          "length_quantile)")
    if m.pairs.max < 0 or m.max_depth < 0 or m.node_max_tokens < 1 or m.batch_problems < 1:
        raise ConfigError("mcts.pairs.max and mcts.max_depth must be >= 0, mcts.node_max_tokens and "
                          "mcts.batch_problems >= 1")
