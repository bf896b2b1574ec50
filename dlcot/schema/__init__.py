"""Typed dataclass schemas of dlcot's config tree, one per config group, registered in Hydra's ConfigStore.

`conf/config.yaml` extends `dlcot_schema` (the `RootConfig` node), so every group option and recipe merges into
typed nodes: a misspelt key, a wrong type or a value outside a choice fails at composition, before any stage
starts. A choice is a `Choice` enum (its members are the options, the one place they are listed); each section's
`validate()` checks ranges and rules across its fields, and `dlcot.config.compose` runs `RootConfig.validate()`
on every composed config. Each stage reads only its own group; how they are composed and where runs go is
`dlcot.config`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from dlcot.schema.base import Choice, Section, check
from dlcot.schema.inputs import (
    CotConfig,
    CotGuide,
    DataConfig,
    DataFormat,
    DataSource,
    Dtype,
    Endpoint,
    EngineConfig,
    EngineName,
    ReplayMatch,
    StudentConfig,
    TeacherConfig,
)
from dlcot.schema.stages import (
    SFT_LENGTHS,
    TRANSFER_ROOT,
    AfterTrunk,
    Dedup,
    EnhanceBackend,
    EnhanceConfig,
    JudgeConfig,
    MctsConfig,
    MctsPairsConfig,
    MctsReward,
    MctsStopConfig,
    NoCorrect,
    NodeKind,
    PairLength,
    PairPrefix,
    Reflection,
    Rewrite,
    SftLength,
    WriterMode,
    check_transfer,
)
from dlcot.schema.train_eval import (
    BenchmarkConfig,
    BenchmarkKind,
    DecontaminateConfig,
    EvalConfig,
    Grading,
    LengthPolicy,
    LoraConfig,
    MissingResponse,
    PackingStrategy,
    Target,
    Thought,
    TrainConfig,
    TrainStage,
    Truncated,
)

__all__ = [  # the schema's public names, wherever their section lives
    'Choice', 'Section', 'check', 'DataSource', 'DataFormat', 'DataConfig', 'TeacherConfig', 'CotGuide',
    'CotConfig', 'Dtype', 'StudentConfig', 'EngineName', 'Endpoint', 'ReplayMatch', 'EngineConfig', 'JudgeConfig',
    'EnhanceBackend', 'AfterTrunk', 'Dedup', 'NoCorrect', 'Rewrite', 'EnhanceConfig', 'MctsStopConfig',
    'PairPrefix', 'PairLength', 'MctsPairsConfig', 'NodeKind', 'TRANSFER_ROOT', 'check_transfer', 'SftLength',
    'SFT_LENGTHS', 'MctsReward', 'WriterMode', 'Reflection', 'MctsConfig', 'LoraConfig', 'TrainStage', 'Thought',
    'MissingResponse', 'Target', 'LengthPolicy', 'PackingStrategy', 'TrainConfig', 'BenchmarkKind',
    'BenchmarkConfig', 'Grading', 'Truncated', 'EvalConfig', 'DecontaminateConfig', 'WandbMode', 'WandbConfig',
    'StageConfig', 'RootConfig', 'GROUPS', 'expected_type', 'choices_of',
]


class WandbMode(Choice):
    disabled, offline, online = "disabled", "offline", "online"


@dataclass
class WandbConfig(Section):
    mode: WandbMode = WandbMode.disabled
    project: str = "dlcot"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class StageConfig:
    """One step of a recipe's chain (dlcot.orchestrate.chain): a command, its overrides, and how to launch it.

    Overrides may name earlier stages' output directories as `{stage_name}`; `launch` names an accelerate
    config (e.g. launch/zero3.yaml) to run the step as its own `accelerate launch` process.
    """
    name: str = MISSING
    command: str = MISSING
    overrides: list[str] = field(default_factory=list)
    launch: str | None = None
    share: bool = False  # generate / mcts / enhance: one output for the runs and sweep jobs that agree on what it reads


@dataclass
class RootConfig(Section):
    command: str = ""
    recipe: str | None = None
    input: str | None = None
    output: str | None = None
    model: str | None = None
    runs_dir: str = "runs"
    seed: int = 0
    tokenizer: str = "qwen2"
    runs: str | None = None  # `dlcot report runs=DIR`
    overrides: list[str] = field(default_factory=list)  # the command line's overrides (set by compose)
    stages: list[StageConfig] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    cot: CotConfig = field(default_factory=CotConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    enhance: EnhanceConfig = field(default_factory=EnhanceConfig)
    mcts: MctsConfig = field(default_factory=MctsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    decontaminate: DecontaminateConfig = field(default_factory=DecontaminateConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def validate(self, key: str = "") -> None:
        """Every section's rules (`Section.validate` walks them), each message naming the full key."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Section):
                value.validate(f.name)


GROUPS = ("data", "teacher", "cot", "student", "engine", "enhance", "mcts", "train", "eval")

def _hint(key: str) -> Any:
    """The schema's type annotation of a dotted key (`data.n_problems` → int); None if unknown."""
    import typing

    node: Any = RootConfig
    hint: Any = None
    for part in key.split("."):
        if not dataclasses.is_dataclass(node):
            return None
        hints = typing.get_type_hints(node)
        if part not in hints:
            return None
        hint = node = hints[part]
    return hint


def expected_type(key: str) -> str | None:
    """The schema's type of a dotted key (`data.n_problems` → `int`), for error messages; None if unknown."""
    hint = _hint(key)
    if hint is None:
        return None
    return getattr(hint, "__name__", None) if isinstance(hint, type) else str(hint).replace("typing.", "")


def choices_of(key: str) -> tuple[str, ...]:
    """The options of a choice key (`enhance.backend` → offline, llm, hybrid); () for any other key."""
    import typing

    hint = _hint(key)
    for t in (hint, *typing.get_args(hint)):  # `DataFormat | None` too
        if isinstance(t, type) and issubclass(t, Choice):
            return t.options()
    return ()

ConfigStore.instance().store(name="dlcot_schema", node=RootConfig)
