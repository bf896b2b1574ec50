"""Every recipe and every group option composes and validates; bad overrides fail with clear messages."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from dlcot.config import compose, config_hash, list_options, run_dir
from dlcot.errors import ConfigError
from dlcot.schema import GROUPS


@pytest.mark.parametrize("recipe", list_options("recipes"))
def test_every_recipe_composes(recipe):
    cfg = compose("generate", [f"recipe={recipe}"])
    assert cfg.recipe == recipe
    assert str(run_dir(cfg)).startswith(f"runs/{recipe}/")


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in list_options(g)])
def test_every_group_option_composes(group, option):
    cfg = compose("generate", [f"{group}={option}"])
    assert cfg[group].name == option.split("/")[-1]  # an option's `name` says which file it came from


def test_recipe_in_subfolder_overrides_groups():
    assert compose("x", ["recipe=dlcot/raw_vs_enhanced"]).recipe == "dlcot/raw_vs_enhanced"


def test_unknown_recipe_names_known_ones():
    with pytest.raises(ConfigError, match="unknown recipe 'nope'.*quickstart"):
        compose("generate", ["recipe=nope"])


@pytest.mark.parametrize("override,match", [
    ("student=nope", "Could not find 'student/nope'"),
    ("enhance.bogus=1", "enhance.bogus"),
    ("+enhance.bogus=1", "bogus"),
    ("train.epochs=abc", "train.epochs"),
])
def test_invalid_overrides_raise_config_error(override, match):
    with pytest.raises(ConfigError, match=match):
        compose("generate", [override])


def test_field_mapping_override_is_a_typed_dict():
    cfg = compose("generate", ["data.fields.problem=question"])
    assert OmegaConf.to_container(cfg.data.fields) == {"problem": "question"}


def test_same_config_same_run_dir_and_output_wins(tmp_path):
    a, b = compose("generate", ["seed=1"]), compose("generate", ["seed=1"])
    assert run_dir(a) == run_dir(b)
    assert config_hash(a) != config_hash(compose("generate", ["seed=2"]))
    # where the output goes and how it is logged does not change what is computed
    assert config_hash(a) == config_hash(compose("generate", ["seed=1", "wandb.mode=offline"]))
    assert run_dir(compose("generate", [f"output={tmp_path}"])) == tmp_path


def test_top_level_folders_do_not_shadow_keys(tmp_path, monkeypatch):
    """`runs=DIR` must stay a plain key even when a `runs/` folder exists (Hydra would read it as a group)."""
    from dlcot.config import REPO_ROOT

    (REPO_ROOT / "runs").mkdir(exist_ok=True)
    assert compose("report", ["runs=runs/x"]).runs == "runs/x"
