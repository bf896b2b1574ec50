"""The schema is the one place a choice's options and a section's rules live: every choice is an enum OmegaConf
checks, every rule fails at composition naming the full key, and the registries the stages dispatch on agree
with the enums."""
from __future__ import annotations

import dataclasses
import re
import typing

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from dlcot import schema
from dlcot.config import compose
from dlcot.errors import ConfigError
from dlcot.schema import Choice, RootConfig, choices_of


def _choice_keys(node: type = RootConfig, prefix: str = "") -> list[tuple[str, type[Choice]]]:
    out = []
    for f in dataclasses.fields(node):
        hint = typing.get_type_hints(node)[f.name]
        for t in (hint, *typing.get_args(hint)):
            if isinstance(t, type) and issubclass(t, Choice):
                out.append((prefix + f.name, t))
            elif dataclasses.is_dataclass(t):
                out += _choice_keys(t, f"{prefix}{f.name}.")
    return out


CHOICE_KEYS = _choice_keys()


def test_every_choice_of_the_schema_is_an_enum_that_omegaconf_enforces():
    assert len(CHOICE_KEYS) >= 30  # every section's choices, the nested judge engine's included
    base = OmegaConf.structured(RootConfig)
    for key, enum in CHOICE_KEYS:
        assert choices_of(key) == enum.options() and all(m.name == m.value for m in enum)
        for option in enum.options():  # each option is accepted as the plain string a YAML file or override has
            OmegaConf.update(base, key, option)
            assert OmegaConf.select(base, key) == option
        with pytest.raises(ValidationError, match=re.escape(key)):
            OmegaConf.update(base, key, "not_an_option")


def test_choice_members_behave_as_their_strings():
    cfg = compose("train", ["train=dpo"])
    assert cfg.train.stage == "dpo" and f"{cfg.train.stage}" == "dpo" and str(cfg.train.stage) == "dpo"
    assert {"dpo": 1}[cfg.train.stage] == 1
    assert "stage: dpo" in OmegaConf.to_yaml(cfg.train)


@pytest.mark.parametrize("override,message", [
    ("enhance.backend=foo", "enhance.backend: 'foo' is not one of offline, llm, hybrid"),
    ("enhance.judge.engine.name=gpt", "enhance.judge.engine.name: 'gpt' is not one of hf, vllm, openai"),
    ("data.format=csv", "data.format: 'csv' is not one of openr1, conversations"),
    ("data.n_problems=-1", "data.n_problems=-1: must be >= 0"),
    ("data.min_steps=4", "data.min_steps=4: more than data.max_steps=3"),
    ("engine.top_p=0", "engine.top_p=0.0: a probability mass in (0, 1]"),
    ("cot.format=haiku", "cot.format=haiku: not one of cot, least_to_most"),
    ("cot.granularity=9", "cot.granularity=9: use null"),
    ("eval.k=[1,8]", "eval.k=[1, 8]: every k in 1..eval.n=1"),
    ("train.warmup_ratio=1.5", "train.warmup_ratio=1.5: a fraction"),
    ("mcts.transfer.thinking.double_check=-1", "mcts.transfer.thinking.double_check=-1: a count of children >= 0"),
    ("mcts.stop.enough=9", "mcts.stop.enough=9 > mcts.stop.solved=8"),
    ("train.trl.num_train_epochz=2", "train.trl.num_train_epochz=2: not a field of TRL's SFTConfig"),
])
def test_a_bad_value_fails_at_composition_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        compose("generate", [override])


@pytest.mark.parametrize("overrides,message", [
    (["train.packing=true"], "train.packing=True: packing is for SFT"),
    (["train.padding_free=true"], "would silently pad"),
    (["train.label_smoothing=0.5"], "train.label_smoothing=0.5: the assumed rate"),
    (["train.missing_response=boxed_gold"], "boxed_gold is for SFT"),
    (["train.trl.packing_strategy=bfd"], "train.trl.packing_strategy=bfd: not a field of TRL's DPOConfig"),
])
def test_dpo_rules_fail_at_composition(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        compose("train", ["train=dpo", *overrides])


def test_trl_fields_pass_by_their_trl_name_into_the_built_config(tmp_path):
    from dlcot.train.dpo import dpo_config
    from dlcot.train.sft import sft_config

    sft = sft_config(compose("train", ["train=sft_cpu_tiny", "train.trl.neftune_noise_alpha=5",
                                       "train.trl.eval_strategy=no"]), tmp_path)
    assert sft.neftune_noise_alpha == 5
    dpo = dpo_config(compose("train", ["train=dpo_cpu_tiny", "train.trl.use_weighting=true"]), tmp_path)
    assert dpo.use_weighting is True


def test_registries_the_stages_dispatch_on_match_the_enums():
    from dlcot.data.adapters import ADAPTERS
    from dlcot.train import STAGES

    assert set(ADAPTERS) == set(schema.DataFormat.options())
    assert set(STAGES) == set(schema.TrainStage.options())


def test_the_config_reference_lists_every_choice_and_minimum():
    from tests.config_reference import render

    doc = render()
    for _, enum in CHOICE_KEYS:
        assert " \\| ".join(enum.options()) in doc, enum.__name__
    assert "| `dedup_k` | `int, >= 0` |" in doc and "`MINIMUMS`" not in doc
