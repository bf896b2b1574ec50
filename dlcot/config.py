"""Hydra composition and run-directory naming.

Every command composes the same tree (`conf/config.yaml` + one option per group + an optional recipe) and
validates it against `RootConfig` (`dlcot.schema`, registered in Hydra's ConfigStore as `dlcot_schema`, which
`conf/config.yaml` extends): a typo in a key, a wrong type, a value that is not one of a choice's options or
breaks a section's rules (`RootConfig.validate`) fails at composition with the key named, before any stage
starts.

Recipes live in `recipes/` at the repository root and are selected with `recipe=NAME` (sub-folders work:
`recipe=dlcot/raw_vs_enhanced`); `compose()` maps that to Hydra's `recipes` group, which `conf/recipes` (a symlink
to `../recipes`) makes visible. The repository root is deliberately not on Hydra's search path: every folder
there (`runs/`, `tests/`) would become a config group and shadow keys like `runs=`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import typing
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ValidationError

from dlcot.errors import ConfigError
from dlcot.schema import RootConfig, choices_of, expected_type

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
RECIPES_DIR = REPO_ROOT / "recipes"


# Keys that name where things go or how they are logged, not what is computed: left out of the run hash.
VOLATILE_KEYS = ("command", "output", "runs_dir", "wandb", "overrides", "stages")


# --------------------------------------------------------------------------------------------- compose
@functools.cache
def _dict_fields(node: type | None = None, prefix: str = "") -> frozenset[str]:
    """Dotted paths of the schema's free-form dict fields (data.fields, engine.rules, train.trl, ...)."""
    out: set[str] = set()
    hints = typing.get_type_hints(node or RootConfig)  # once per class: it evaluates every annotation
    for f in dataclasses.fields(node or RootConfig):
        hint = hints[f.name]
        if typing.get_origin(hint) is dict:
            out.add(prefix + f.name)
        elif dataclasses.is_dataclass(hint):
            out |= _dict_fields(hint, f"{prefix}{f.name}.")
    return frozenset(out)


@functools.cache
def _schema() -> DictConfig:
    """The typed tree of `RootConfig`, built once per process (about half the cost of the merge into it, which
    copies it and leaves it unchanged)."""
    return OmegaConf.structured(RootConfig)


def normalize_overrides(overrides: list[str]) -> tuple[list[str], str | None]:
    """Map the user's `recipe=NAME` to Hydra's `recipes=NAME` and keep the name for run naming; map
    `benchmark=NAME` to the `benchmark` group placed at `eval.benchmark` (`dlcot eval benchmark=B`,
    docs/architecture.md §3)."""
    out, recipe = [], None
    for ov in overrides:
        key, sep, value = ov.partition("=")
        if sep and key.lstrip("+~") == "recipe":
            recipe = value
            out.append(f"recipes={value}")
            continue
        if sep and key == "benchmark":
            if not (CONF_DIR / "benchmark" / f"{value}.yaml").is_file():
                known = ", ".join(list_options("benchmark"))
                raise ConfigError(f"unknown benchmark {value!r}: no file {CONF_DIR / 'benchmark' / value}.yaml "
                                  f"(known: {known})")
            out.append(f"benchmark@eval.benchmark={value}")
            continue
        if sep and not key.startswith(("+", "~")) and key.rpartition(".")[0] in _dict_fields():
            ov = "++" + ov  # a key inside a free-form dict (data.fields.problem=question) is added or replaced
        out.append(ov)
    if recipe is not None:
        out.append(f"recipe={recipe}")
        if not (RECIPES_DIR / f"{recipe}.yaml").is_file():
            known = ", ".join(list_options("recipes"))
            raise ConfigError(f"unknown recipe {recipe!r}: no file {RECIPES_DIR / recipe}.yaml (known: {known})")
    return out, recipe


def compose(command: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose and validate the config for `command` with Hydra's compose API.

    Raises ConfigError (with Hydra's message naming the key or option) when the overrides do not compose.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user_overrides = list(overrides)
    overrides, _ = normalize_overrides(user_overrides)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="dlcot"):
            cfg = hydra_compose(config_name="config", overrides=[f"command={command}", *overrides])
        OmegaConf.resolve(cfg)
        # `+group.key=...` appends past Hydra's struct flag: re-check against the schema so typos still fail.
        typed = OmegaConf.merge(_schema(), OmegaConf.to_container(cfg))
        root = OmegaConf.to_object(typed)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"invalid config for `dlcot {command}`: {_explain(err)}") from err
    assert isinstance(root, RootConfig)
    root.validate()
    cfg.overrides = user_overrides
    return cfg


def _explain(err: BaseException) -> str:
    """Hydra's message, plus the key and the type the schema expects when a value did not convert (Hydra's own
    message stops at "Error merging override" and hides which type was wanted); for a choice, the options."""
    cause: BaseException | None = err
    while cause is not None:
        key = getattr(cause, "full_key", None)
        if key and isinstance(cause, ValidationError):
            path = re.sub(r"\[\d+\]", "", str(key))
            msg = str(getattr(cause, "msg", cause)).splitlines()[0]
            options = choices_of(path)
            value = re.match(r"Invalid value '(.*)', expected one of", msg)
            if options and value:
                return f"{key}: {value.group(1)!r} is not one of {', '.join(options)}"
            wanted = expected_type(path)
            return f"{key}: {msg}" + (f" (expected {wanted})" if wanted else "")
        cause = cause.__cause__ or cause.__context__
    return str(err)


def list_options(group: str) -> list[str]:
    """Option names of a config group (recipes included), with sub-folders as `dir/name`."""
    root = RECIPES_DIR if group == "recipes" else CONF_DIR / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


# --------------------------------------------------------------------------------------------- run dirs
def _digest(data: dict, length: int) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:length]


def config_hash(cfg: DictConfig, length: int = 8) -> str:
    """Short hash of the resolved config minus VOLATILE_KEYS: same config → same run directory."""
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    return _digest({k: v for k, v in data.items() if k not in VOLATILE_KEYS}, length)


# What a stage's output depends on (top-level keys and whole groups of its composed config), for the commands
# whose output `dlcot run` can share between chains (`share: true`) and that resume only their own partials.
SHARED_READS = {
    "generate": ("input", "seed", "tokenizer", "data", "teacher", "cot", "engine"),
    "mcts": ("input", "seed", "tokenizer", "data", "teacher", "engine", "mcts"),
    "enhance": ("input", "tokenizer", "data", "enhance"),
}


def reads_hash(cfg: DictConfig, command: str, length: int = 8) -> str:
    """Short hash of the config parts `command` reads (SHARED_READS): equal for every chain it can serve."""
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    reads = {k: data.get(k) for k in SHARED_READS[command]}
    if isinstance(reads.get("enhance"), dict):  # how many processes enhance uses changes no byte of its output
        reads["enhance"] = {k: v for k, v in reads["enhance"].items() if k != "workers"}
    return _digest(reads, length)


def run_dir(cfg: DictConfig) -> Path:
    """`output=` when given, else `runs/<recipe or command>/<hash>`."""
    if cfg.get("output"):
        return Path(cfg.output)
    name = cfg.get("recipe") or cfg.command or "run"
    return Path(cfg.runs_dir) / name / config_hash(cfg)


def is_rank0() -> bool:
    """Only the main process writes files; every rank composes the same config and run directory."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def resume_key(cfg: DictConfig) -> tuple[str | None, tuple[str, ...]]:
    """(hash a rerun must match to resume the run directory's unfinished work, the files that are that work).

    Shared stages resume from any config that agrees on what they read (`reads_hash`); `train` resumes its
    checkpoints only under the same whole config (`train.resume=never` or a path opts out of the check); `eval`
    checks its own setup (`eval_setup.json`: `eval.n` and `eval.limit` may grow); the others need the same config."""
    if cfg.command in SHARED_READS:
        return reads_hash(cfg, cfg.command), ("*.partial",)
    if cfg.command == "train":
        return (config_hash(cfg) if cfg.train.resume == "auto" else None), ("checkpoint-*", "*.partial")
    if cfg.command == "eval":
        return None, ()
    return config_hash(cfg), ("*.partial",)


def prepare_run_dir(cfg: DictConfig) -> Path:
    """Claim the run directory (`dlcot.rundir`: output check, lock, config hash) and save the resolved config
    there (rank 0 only: the other ranks of a launch never write)."""
    from dlcot.records import atomic_write_text
    from dlcot.rundir import claim

    path = run_dir(cfg)
    if is_rank0():
        key, resumable = resume_key(cfg)
        claim(path, cfg.command, key, resumable)
        atomic_write_text(path / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    return path


def to_dict(node: DictConfig | Any) -> dict:
    """A plain dict of a config node (for dataclass construction and JSON metadata); choices as plain strings."""
    out = OmegaConf.to_container(node, resolve=True, enum_to_str=True) if isinstance(node, DictConfig) else dict(node)
    assert isinstance(out, dict)
    return out
