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
    """A recipe under recipes/<folder>/ is found, and the group options of its defaults list are the ones used."""
    from dlcot.config import RECIPES_DIR

    recipe = OmegaConf.to_container(OmegaConf.load(RECIPES_DIR / "dlcot" / "raw_vs_enhanced.yaml"))
    chosen = {k.split()[-1].lstrip("/"): v for entry in recipe["defaults"] if isinstance(entry, dict)
              for k, v in entry.items() if k.startswith("override")}
    cfg, default = compose("x", ["recipe=dlcot/raw_vs_enhanced"]), compose("x")
    assert chosen and {g: cfg[g].name for g in chosen} == {g: o.split("/")[-1] for g, o in chosen.items()}
    assert any(cfg[g].name != default[g].name for g in chosen), "the recipe changes no group: nothing was tested"


def test_raw_vs_enhanced_keeps_train_sft_values_but_its_accumulation():
    cfg = compose("x", ["recipe=dlcot/raw_vs_enhanced"])
    assert (cfg.data.name, cfg.student.name, cfg.engine.name, cfg.train.name) == ("skyt1", "llama3_2_3b", "vllm", "sft")
    sft = OmegaConf.to_container(compose("x", ["train=sft"]).train)
    recipe = OmegaConf.to_container(cfg.train)
    assert {k for k in sft if sft[k] != recipe[k]} == {"gradient_accumulation_steps"}  # all else is train=sft's


def test_lora_options_are_sft_plus_their_differences():
    sft, lora, qlora = (OmegaConf.to_container(compose("train", [f"train={t}"]).train)
                        for t in ("sft", "sft_lora", "sft_qlora"))
    assert {k for k in sft if sft[k] != lora[k]} == {"name", "learning_rate", "lora"}
    assert lora["lora"]["enabled"] and (lora["lora"]["r"], lora["lora"]["alpha"]) == (64, 128)
    assert {k for k in sft if qlora[k] != lora[k]} == {"name", "learning_rate", "lora"}
    assert qlora["lora"] == {**lora["lora"], "quantize_4bit": True}


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
    """`runs=DIR` must stay a plain key even when a `runs/` folder sits at the checkout's root and in the working
    directory (Hydra would read it as a group if either were on its search path). A stand-in checkout in
    tmp_path, so that nothing is written into the repository."""
    from dlcot import config

    (tmp_path / "conf").symlink_to(config.CONF_DIR)
    (tmp_path / "recipes").symlink_to(config.RECIPES_DIR)
    (tmp_path / "runs" / "x").mkdir(parents=True)
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(config, "CONF_DIR", tmp_path / "conf")
    monkeypatch.setattr(config, "RECIPES_DIR", tmp_path / "recipes")
    monkeypatch.chdir(tmp_path)
    assert compose("report", ["runs=runs/x"]).runs == "runs/x"
