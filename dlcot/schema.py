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
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from dlcot.errors import ConfigError


class Choice(str, Enum):
    """A config choice: OmegaConf converts `enhance.backend=llm` to the member and rejects any other value at
    composition, naming the key and the options. Members are strings (`== "llm"`, JSON, f-strings give the value),
    so stages compare them with plain literals. A member's name is its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def options(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class Section:
    """Base of the config sections: `validate(key)` checks `MINIMUMS` (lower bounds of numeric fields; a
    negative count is a typo, not a request) and the sub-sections; a section overrides it for its other rules
    and calls this first. `key` is the section's dotted path, so every message names the full key."""

    MINIMUMS: ClassVar[dict[str, float]] = {}

    def validate(self, key: str) -> None:
        for name, low in self.MINIMUMS.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool) and value < low:
                raise ConfigError(f"{key}.{name}={value}: must be >= {low}")
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Section):
                value.validate(f"{key}.{f.name}")


def check(ok: bool, key: str, value: Any, rule: str) -> None:
    """Raise ConfigError `key=value: rule` unless `ok`."""
    if not ok:
        raise ConfigError(f"{key}={value}: {rule}")


class DataSource(Choice):
    synthetic, jsonl, hub, llamafactory = "synthetic", "jsonl", "hub", "llamafactory"


class DataFormat(Choice):
    openr1, conversations, deepseek_fields, s1k, limo, messages = (
        "openr1", "conversations", "deepseek_fields", "s1k", "limo", "messages")


@dataclass
class DataConfig(Section):
    """Where problems/traces come from. `fields` maps our record names to the source's field names."""
    MINIMUMS: ClassVar[dict[str, float]] = {"n_problems": 0, "heldout": 0, "limit": 0, "min_steps": 1,
                                            "max_steps": 1, "max_operand": 1}
    name: str = "synthetic"
    source: DataSource = DataSource.synthetic  # synthetic generator | jsonl (data.path) | hub | llamafactory
    path: str | None = None  # local JSONL / parquet for source=jsonl
    hub_name: str | None = None  # Hugging Face dataset for source=hub (GPU clusters; needs the Hub)
    hub_config: str | None = None
    split: str = "train"
    fields: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    # synthetic generator (dlcot.data.synthetic)
    n_problems: int = 300
    min_steps: int = 1
    max_steps: int = 3
    max_operand: int = 20
    heldout: int = 0  # problems after the training set, for evaluation
    # source=llamafactory (dlcot.data.llamafactory): JSON-array files registered in a LLaMA-Factory dataset_info.json
    dataset_info: str | None = None  # the dataset_info.json (or its folder)
    entry: str | None = None  # an entry by name; None: from `entries` by teacher.name / cot.format / cot.granularity
    entries: dict[str, str] = field(default_factory=dict)  # "teacher/format[/level]" → entry name ({level} filled)
    gold_entry: str | None = None  # answer-only entry whose outputs are the gold answers (joined on problem text)
    # Hub long-CoT datasets in their own schema (dlcot.data.adapters)
    format: DataFormat | None = None
    teacher_name: str | None = None  # the teacher label of a one-teacher dataset
    correct_only: bool = False  # keep only generations the dataset flags correct (openr1, s1k grades)
    teachers: list[str] = field(default_factory=list)  # s1k: trajectories to read (default gemini, deepseek)
    cache_dir: str | None = None  # streamed Hub rows (default $DLCOT_CACHE or ~/.cache/dlcot)

    def validate(self, key: str) -> None:
        super().validate(key)
        check(self.min_steps <= self.max_steps, f"{key}.min_steps", self.min_steps,
              f"more than {key}.max_steps={self.max_steps}")


@dataclass
class TeacherConfig(Section):
    """The model whose long CoT is distilled. `family` decides homologous vs nonhomologous students."""
    MINIMUMS: ClassVar[dict[str, float]] = {"n": 1, "max_new_tokens": 1, "temperature": 0, "tensor_parallel_size": 1,
                                            "max_model_len": 1}
    name: str = "synthetic"
    family: str = "qwen"
    model: str | None = None  # Hub name or local path when generating with an engine
    system_prompt: str | None = None
    prompt_template: str = "{problem}"
    max_new_tokens: int = 8192
    temperature: float = 0.7
    top_p: float = 0.95
    n: int = 1
    # what the model needs to start under vLLM (engine.tensor_parallel_size / engine.max_model_len win when set):
    # a 32B model at TP=1 on an 80 GB GPU has no room for a KV cache at its full 40k-131k context
    tensor_parallel_size: int | None = None
    max_model_len: int | None = None
    # synthetic teacher: fields of dlcot.data.synthetic.TeacherStyle (p_slip, p_abandon, p_redundant, ...)
    style: dict[str, Any] = field(default_factory=dict)


class CotGuide(Choice):
    exemplar, instruction = "exemplar", "instruction"


@dataclass
class CotConfig(Section):
    """How the teacher is asked to write its CoT (key factors of CoT distillation, arXiv 2502.18001): the
    granularity level (1 coarsest .. 6 finest; None: the teacher's own) and the format (`cot`: plain
    step-by-step). The instruction texts are in conf/cot/key_factors.yaml; `dlcot generate` appends them to
    `teacher.prompt_template`, so each (granularity, format, teacher) point of a sweep is a config of its own."""
    name: str = "key_factors"
    granularity: int | None = None
    format: str = "cot"
    granularity_instructions: dict[int, str] = field(default_factory=dict)
    format_instructions: dict[str, str] = field(default_factory=dict)
    # cot.granularity=k with guide=exemplar (dlcot.data.exemplars): one released CoT of level k shown before the problem
    guide: CotGuide = CotGuide.exemplar  # exemplar (one released CoT of the level) | instruction (the sentences above)
    exemplar_info: str | None = None  # LLaMA-Factory dataset_info.json of the release
    exemplar_entries: dict[str, str] = field(default_factory=dict)  # "format[/level]" → entry ({level} filled)
    exemplar_row: int = 0  # which row of that entry (the next one when it is the problem itself)

    def validate(self, key: str) -> None:
        """`format` and `granularity` are keys of the instruction mappings (the group's own options)."""
        super().validate(key)
        if self.format_instructions:
            check(self.format in self.format_instructions, f"{key}.format", self.format,
                  f"not one of {', '.join(self.format_instructions)}")
        if self.granularity is not None and self.granularity_instructions:
            check(self.granularity in self.granularity_instructions, f"{key}.granularity", self.granularity,
                  f"use null (the teacher's own) or one of {', '.join(map(str, self.granularity_instructions))} "
                  "(1 coarsest)")


class Dtype(Choice):
    auto, bfloat16, float16, float32 = "auto", "bfloat16", "float16", "float32"


@dataclass
class StudentConfig(Section):
    """A student family: what differs between Qwen, Llama, Gemma, SmolLM2, tiny test models (dlcot.train.models)."""
    name: str = "tiny_qwen2"
    family: str = "qwen"  # compared with teacher.family: homologous (same) vs nonhomologous pairs
    model: str = MISSING  # Hub name, local directory, or `tiny:<family>` for the test models
    tiny: dict[str, Any] = field(default_factory=dict)  # build_tiny_model kwargs for tiny:<family>
    chat_template: str | None = None  # file name in dlcot/train/templates/ (never inlined in YAML)
    think_open: str = "<think>"
    think_close: str = "</think>"
    add_special_tokens: list[str] = field(default_factory=list)  # added (embeddings resized), e.g. <think> tokens
    eos_token: str | None = None  # the end-of-turn token the template closes assistant turns with
    pad_token: str | None = None
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    attn_implementation: str | None = None  # e.g. flash_attention_2 / sdpa on GPUs
    dtype: Dtype = Dtype.auto  # auto: float32 on CPU, the checkpoint's dtype on GPUs
    gguf_file: str | None = None
    revision: str | None = None
    context_length: int | None = None  # the model's trained context: train.max_length above it is an error
    MINIMUMS: ClassVar[dict[str, float]] = {"context_length": 1}


class EngineName(Choice):
    hf, vllm, openai, scripted, replay = "hf", "vllm", "openai", "scripted", "replay"


class Endpoint(Choice):
    chat, completions = "chat", "completions"


class ReplayMatch(Choice):
    id, problem = "id", "problem"


@dataclass
class EngineConfig(Section):
    """Text generation backend (dlcot.engines).

    Sampling settings here are the defaults a stage passes to `Engine.generate`; temperature 0 means greedy.
    How many samples a prompt gets is the stage's (`teacher.n`, `eval.n`).
    """
    MINIMUMS: ClassVar[dict[str, float]] = {"batch_size": 1, "chunk_size": 1, "max_new_tokens": 1, "temperature": 0,
                                            "concurrency": 1, "max_retries": 0, "tensor_parallel_size": 1,
                                            "max_model_len": 1, "prefix_cache_mib": 0}
    name: EngineName = EngineName.hf
    batch_size: int = 8  # hf: sequences per forward pass
    chunk_size: int | None = None  # prompts per generate() call (written after each); None: batch_size
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    dtype: Dtype = Dtype.auto  # hf / vllm weights dtype
    device: str | None = None  # hf: cpu | cuda | cuda:1 ...; None picks cuda when available
    prefix_cache_mib: int = 1024  # hf: key/value states of prompt prefixes kept for reuse across calls; 0: off
    # openai-compatible servers
    base_url: str | None = None
    endpoint: Endpoint = Endpoint.chat  # chat (/chat/completions, server applies the chat template) | completions
    served_model: str | None = None  # the `model` field of requests; defaults to the model path/name
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    max_retries: int = 4
    timeout_s: float = 120.0
    cache_dir: str | None = None
    # vllm (None: the teacher's tensor_parallel_size / max_model_len, else 1 / the model's own context)
    tensor_parallel_size: int | None = None
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    # replay / scripted
    path: str | None = None
    response_field: str = "response"
    id_field: str = "id"
    match: ReplayMatch = ReplayMatch.id  # replay: id (stored id == problem id) | problem (its text in the prompt)
    problem_field: str = "problem"
    rules: dict[str, str] = field(default_factory=dict)  # scripted: regex on the prompt -> response

    def validate(self, key: str) -> None:
        super().validate(key)
        check(0 < self.top_p <= 1, f"{key}.top_p", self.top_p, "a probability mass in (0, 1]")
        check(0 < self.gpu_memory_utilization <= 1, f"{key}.gpu_memory_utilization", self.gpu_memory_utilization,
              "a fraction in (0, 1]")


@dataclass
class JudgeConfig(Section):
    """The LLM judge of `enhance.backend=llm|hybrid` (dlcot.enhance.judge / llm): any engine, its own model and
    sampling. Prompts are one file per step (segment, label, cluster, rewrite) in conf/enhance/prompts/."""
    engine: EngineConfig = field(default_factory=EngineConfig)
    model: str | None = None  # hf/vllm: local path; openai: served model name
    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    chunk: int = 32  # traces per engine batch (each step is one batch over a chunk) and per checkpoint
    retries: int = 1  # a failed validation is asked again this many times, with the error stated
    max_chars: int = 60000  # longer reasoning is not sent: every step falls back (reason too_long)
    cache_dir: str | None = None  # answers cached by (model, prompt); None: <runs_dir>/judge_cache
    prompts: str | None = None  # a directory with segment.txt, label.txt, cluster.txt, rewrite.txt
    MINIMUMS: ClassVar[dict[str, float]] = {"max_new_tokens": 1, "chunk": 1, "retries": 0, "max_chars": 1}


class EnhanceBackend(Choice):
    offline, llm, hybrid = "offline", "llm", "hybrid"


class AfterTrunk(Choice):
    keep, drop = "keep", "drop"


class Dedup(Choice):
    none, all, last_k = "none", "all", "last_k"


class NoCorrect(Choice):
    reject, keep_raw = "reject", "keep_raw"


class Rewrite(Choice):
    none, llm = "none", "llm"


@dataclass
class EnhanceConfig(Section):
    """DLCoT simplification policy (dlcot.enhance, conf/enhance/*.yaml). The default option `dlcot` is the
    paper's full method: keep the trunk (everything up to the first correct approach), deduplicate the redundant
    spans after it, drop incorrect/incomplete approaches after it. The trunk, conclusion, restatement and
    understanding are never cut."""
    MINIMUMS: ClassVar[dict[str, float]] = {"dedup_k": 0, "workers": 0}
    name: str = "dlcot"
    # offline (rule-based) | llm (the judge: segments, labels, clusters) | hybrid (the judge on offline segments)
    backend: EnhanceBackend = EnhanceBackend.offline
    after_trunk: AfterTrunk = AfterTrunk.keep  # approaches/checks after the first correct (drop: keep_first_correct)
    dedup: Dedup = Dedup.all  # cut no / every / the last k redundant spans (later members of a cluster)
    dedup_k: int = 1
    drop_incorrect_offtrunk: bool = True  # cut incorrect/incomplete approaches after the trunk
    cut_error_spans: bool = False  # cut spans a backend marks as errors (the offline backend marks none)
    offtrunk_needs_error: bool = False  # SODE delete_all: drop an off-trunk non-correct approach only if it has errors
    no_correct: NoCorrect = NoCorrect.reject  # traces whose final answer is right but no approach is correct
    rewrite: Rewrite = Rewrite.none  # llm: the judge rewrites each seam fluently (kept if maths and answer survive)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    cluster_threshold: float = 0.2  # Jaccard of math-token bigrams (best F1 on the gold dev pairs, README)
    repair_connectives: bool = True  # drop a dangling leading connective at a seam ("Wait,", "Alternatively,")
    connectives: list[str] = field(default_factory=lambda: [
        "But wait a minute,", "But wait,", "Wait a minute,", "Wait a second,", "Wait,", "Hold on,", "Hmm,",
        "Alternatively,", "Again,", "Also,", "Still,", "But", "However,", "Anyway,"])
    workers: int = 2  # processes (both cores); 1 = in-process

    def validate(self, key: str) -> None:
        super().validate(key)
        if self.dedup == Dedup.last_k:
            check(self.dedup_k >= 1, f"{key}.dedup_k", self.dedup_k, f"must be >= 1 with {key}.dedup=last_k")
        check(0 <= self.cluster_threshold <= 1, f"{key}.cluster_threshold", self.cluster_threshold,
              "a Jaccard similarity in [0, 1]")


@dataclass
class MctsStopConfig(Section):
    """When one problem's search ends (official: 8 correct; > 32 rollouts with >= 4 correct; > 128 with fewer)."""
    MINIMUMS: ClassVar[dict[str, float]] = {"solved": 1, "enough": 0, "enough_after": 0, "give_up_after": 0,
                                            "max_rollouts": 1, "max_nodes": 2}
    solved: int = 8  # correct rollouts that end the search
    enough: int = 4
    enough_after: int = 32  # more rollouts than this, with >= `enough` correct, end it
    give_up_after: int = 128  # more rollouts than this, with < `enough` correct, give up
    max_rollouts: int = 256  # budget
    max_nodes: int = 4096  # budget on a tree's size (a writer that never finishes an answer)

    def validate(self, key: str) -> None:
        """The thresholds in order: enough correct <= solved, and a search gives up later than it may end with
        enough."""
        super().validate(key)
        if self.enough > self.solved:
            raise ConfigError(f"{key}.enough={self.enough} > {key}.solved={self.solved}: the thresholds are out of "
                              "order (enough correct <= solved)")
        if self.enough_after > self.give_up_after:
            raise ConfigError(f"{key}.enough_after={self.enough_after} > {key}.give_up_after={self.give_up_after}: "
                              "the thresholds are out of order (a search gives up later than it may end with enough)")


class PairPrefix(Choice):
    min, max = "min", "max"


class PairLength(Choice):
    balanced, any = "balanced", "any"


@dataclass
class MctsPairsConfig(Section):
    """Preference pairs from a tree: which correct path a wrong one is paired with."""
    MINIMUMS: ClassVar[dict[str, float]] = {"max": 0}
    prefix: PairPrefix = PairPrefix.min  # min: the correct path sharing the fewest nodes (paper) | max
    length: PairLength = PairLength.balanced  # balanced: chosen/rejected lengths close (paper's length selection)
    max: int = 4  # pairs per problem


class NodeKind(Choice):
    """Marco-o1 v2's thought-node kinds (dlcot.mcts.tree); `answer` is terminal, rewarded by the verifier."""
    sub_task, thinking, hypothesis, double_check, reflection, thinking_from_scratch, answer = (
        "sub_task", "thinking", "hypothesis", "double_check", "reflection", "thinking_from_scratch", "answer")


TRANSFER_ROOT = "root"  # the transfer matrix's row for the problem itself


def check_transfer(transfer: Mapping[str, Mapping[str, int]], key: str, answers_planned: bool = True) -> None:
    """Known kinds, counts >= 0, the root can start a path, and (when answers are planned nodes) every kind the
    root or a reflection can reach can also reach an answer, so a rollout always ends."""
    kinds, root, answer = NodeKind.options(), TRANSFER_ROOT, NodeKind.answer.value
    for src, dsts in transfer.items():
        if src not in (*kinds, root) or src == answer:
            raise ConfigError(f"{key}.{src}: not a node kind that has successors ({root}, "
                              f"{', '.join(k for k in kinds if k != answer)})")
        if not isinstance(dsts, Mapping):
            raise ConfigError(f"{key}.{src}: a mapping kind → count, e.g. {{thinking: 2}}; got {dsts!r}")
        for dst, count in dsts.items():
            if dst not in kinds:
                raise ConfigError(f"{key}.{src}.{dst}: unknown node kind ({', '.join(kinds)})")
            if not isinstance(count, int) or count < 0:
                raise ConfigError(f"{key}.{src}.{dst}={count!r}: a count of children >= 0")
    if not any(transfer.get(root, {}).values()):
        raise ConfigError(f"{key}.{root}: no children; the root must start at least one path")
    if not answers_planned:
        return
    todo = [k for k in (root, NodeKind.reflection.value) if k in transfer]  # error backtracking adds reflections
    reach = set(todo)
    while todo:
        for dst, count in transfer.get(todo.pop(), {}).items():
            if count and dst not in reach:
                reach.add(dst)
                todo.append(dst)
    ends = {answer}
    grew = True
    while grew:
        grew = False
        for src, dsts in transfer.items():
            if src not in ends and any(c and d in ends for d, c in dsts.items()):
                ends.add(src)
                grew = True
    stuck = sorted(reach - ends)
    if stuck:
        raise ConfigError(f"{key}: from {stuck} no path reaches an answer node, so a rollout could not end")


class SftLength(Choice):
    quantile, shortest, median, longest = "quantile", "shortest", "median", "longest"


# the paper's short / mid / long SFT path choices (Thoughts Length Balance) as nearest-rank quantiles
SFT_LENGTHS = {SftLength.shortest: 0.0, SftLength.median: 0.5, SftLength.longest: 1.0}


class MctsReward(Choice):
    answer_nodes, probe_every_node = "answer_nodes", "probe_every_node"


class WriterMode(Choice):
    roles, random = "roles", "random"


class Reflection(Choice):
    fixed, generated, generated_with_answer, none = "fixed", "generated", "generated_with_answer", "none"


@dataclass
class MctsConfig(Section):
    """Marco-o1 v2 tree search over typed thought nodes (dlcot.mcts); `teacher.model` (and `writers`) write the
    nodes through `engine`, the verifier checks answers against gold. Official values in
    conf/mcts/marco_o1_v2.yaml."""
    MINIMUMS: ClassVar[dict[str, float]] = {"exploration": 0, "max_depth": 0, "node_max_tokens": 1,
                                            "batch_problems": 1}
    name: str = "marco_o1_v2"
    reward: MctsReward = MctsReward.answer_nodes  # answer_nodes (official) | probe_every_node
    exploration: float = 1.414  # UCT's c in Q + c*sqrt(2 ln N / n)
    stop: MctsStopConfig = field(default_factory=MctsStopConfig)
    max_depth: int = 0  # 0: no cap
    node_max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    batch_problems: int = 16  # trees searched in lockstep: each step is one engine batch per writer for all of them
    writers: list[str] = field(default_factory=list)  # more node writers after teacher.model (multi-model)
    writer_mode: WriterMode = WriterMode.roles  # roles (kind → writer, official) | random
    roles: dict[str, int] = field(default_factory=dict)
    reflection: Reflection = Reflection.fixed  # fixed (official) | generated | generated_with_answer | none
    backtrack_under: NodeKind = NodeKind.double_check  # where a reflection goes after a wrong answer
    reflection_told: str = ""
    base_prompt: str = "{problem}"
    tags: dict[str, str] = field(default_factory=dict)
    phrases: dict[str, list[str]] = field(default_factory=dict)
    transfer: dict[str, dict[str, int]] = field(default_factory=dict)  # kind (or root) → {kind: children}
    length_quantile: float = 0.0  # Thoughts Length Balance: 0 shortest correct path .. 1 longest, as SFT data
    sft_length: SftLength = SftLength.quantile  # quantile (length_quantile) | the paper's short/mid/long presets
    pairs: MctsPairsConfig = field(default_factory=MctsPairsConfig)
    from_trees: str = ""  # an earlier `dlcot mcts` run's directory: extract from its trees, no search

    def validate(self, key: str) -> None:
        """Ranges, orders, the transfer matrix, and node kinds as the keys of tags / phrases / roles."""
        super().validate(key)
        check_transfer(self.transfer, f"{key}.transfer", answers_planned=self.reward == MctsReward.answer_nodes)
        kinds = NodeKind.options()
        for group in ("tags", "phrases", "roles"):
            unknown = [k for k in getattr(self, group) if k not in kinds]
            if unknown:
                raise ConfigError(f"{key}.{group}: {unknown} are not node kinds ({', '.join(kinds)})")
        missing = [k for k in kinds if not self.tags.get(k)]
        if missing:
            raise ConfigError(f"{key}.tags: no tag for {missing}; every kind's text is wrapped in <tag>...</tag>")
        check(0 <= self.length_quantile <= 1, f"{key}.length_quantile", self.length_quantile,
              "0 (shortest correct path) .. 1 (longest)")
        preset = SFT_LENGTHS.get(self.sft_length)
        if preset is not None and self.length_quantile not in (0.0, preset):
            raise ConfigError(f"{key}.sft_length={self.sft_length} is quantile {preset}, but {key}.length_quantile="
                              f"{self.length_quantile}: set one of them (sft_length=quantile to use length_quantile)")
        bad_roles = {k: w for k, w in self.roles.items() if w < 0}
        check(not bad_roles, f"{key}.roles", bad_roles, "a writer index is >= 0 (0 = teacher.model, then mcts.writers)")
        check("{problem}" in self.base_prompt, f"{key}.base_prompt", repr(self.base_prompt),
              "must contain {problem}, where the problem goes")


@dataclass
class LoraConfig(Section):
    """PEFT LoRA/QLoRA; target modules come from the student (`student.lora_target_modules`) unless set here."""
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | None = None
    quantize_4bit: bool = False  # QLoRA: needs a CUDA GPU and bitsandbytes
    merge: bool = True  # save base + adapter merged (vLLM, sharing); the adapter itself goes to `adapter/`
    MINIMUMS: ClassVar[dict[str, float]] = {"r": 1, "alpha": 1, "dropout": 0}


class TrainStage(Choice):
    sft, dpo = "sft", "dpo"


class Thought(Choice):
    auto, enhanced, raw = "auto", "enhanced", "raw"


class MissingResponse(Choice):
    reject, boxed_gold = "reject", "boxed_gold"


class Target(Choice):
    think, as_is = "think", "as_is"


class LengthPolicy(Choice):
    drop, truncate, error = "drop", "truncate", "error"


class PackingStrategy(Choice):
    bfd, bfd_split, wrapped = "bfd", "bfd_split", "wrapped"


@dataclass
class TrainConfig(Section):
    """Training settings; TRL's SFTConfig/DPOConfig are built from this group in dlcot.train only. Any other
    field of TRL's config for `stage` goes in `trl` by its TRL name (checked against TRL's dataclass here)."""
    MINIMUMS: ClassVar[dict[str, float]] = {"limit": 0, "max_length": 1, "per_device_batch_size": 1,
                                            "gradient_accumulation_steps": 1, "save_steps": 1, "logging_steps": 1,
                                            "learning_rate": 0, "weight_decay": 0, "max_grad_norm": 0,
                                            "dataloader_num_workers": 0, "sft_alpha": 0}
    name: str = "sft"
    stage: TrainStage = TrainStage.sft  # sft (traces) | dpo (preference pairs)
    data: str | None = None  # SFT JSONL (traces.jsonl / enhanced.jsonl / sft.jsonl) or pairs JSONL
    fields: dict[str, str] = field(default_factory=dict)  # trace field -> source field (e.g. problem: question)
    thought: Thought = Thought.auto  # auto (a row's `enhanced` text when it has one, else `reasoning`) | enhanced | raw
    limit: int | None = None  # first N records of `data`
    system_prompt: str | None = None
    prompt_template: str = "{problem}"
    missing_response: MissingResponse = MissingResponse.reject  # boxed_gold: `The final answer is \\boxed{gold}`
    target: Target = Target.think  # think (<think>thought</think> response) | as_is (the teacher's text: key factors)
    max_length: int = 4096
    length_policy: LengthPolicy = LengthPolicy.drop  # for examples longer than max_length (tokens)
    packing: bool = False
    packing_strategy: PackingStrategy = PackingStrategy.bfd  # TRL's
    padding_free: bool = False
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 1e-5
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch_fused"  # transformers' default on torch >= 2.8 (CPU and CUDA)
    per_device_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    bf16: bool = False
    use_cpu: bool = False
    dataloader_num_workers: int = 0
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int = 2
    resume: str = "auto"  # auto | never | PATH of a checkpoint directory
    lora: LoraConfig = field(default_factory=LoraConfig)
    # DPO (Marco-o1 v2): conservative DPO + alpha * SFT, common-prefix masking
    beta: float = 0.1
    label_smoothing: float = 0.0
    sft_alpha: float = 0.0
    prefix_masking: bool = False
    trl: dict[str, Any] = field(default_factory=dict)  # any SFTConfig / DPOConfig field by its TRL name (applied last)

    def validate(self, key: str) -> None:
        super().validate(key)
        check(0 <= self.warmup_ratio < 1, f"{key}.warmup_ratio", self.warmup_ratio,
              "a fraction of the training steps in [0, 1)")
        if self.stage == TrainStage.dpo:
            check(self.beta > 0, f"{key}.beta", self.beta, "DPO's KL weight must be > 0")
            check(0 <= self.label_smoothing < 0.5, f"{key}.label_smoothing", self.label_smoothing,
                  "the assumed rate of flipped preferences (conservative DPO) lies in [0, 0.5)")
            check(not self.packing, f"{key}.packing", self.packing, "packing is for SFT; DPO pairs are padded")
            # TRL 1.16's DPOTrainer turns padding_free off with a warning: refused rather than reported as done
            check(not self.padding_free, f"{key}.padding_free", self.padding_free,
                  "TRL's DPOTrainer (1.16) does not support padding-free batches and would silently pad")
            check(self.missing_response == MissingResponse.reject, f"{key}.missing_response", self.missing_response,
                  "boxed_gold is for SFT: a DPO pair would get the gold answer after its rejected thought; give "
                  "chosen_response and rejected_response")
        # TRL does not enforce max_length without packing when padding-free: our length policy must have done it
        check(not (self.padding_free and not self.packing and self.length_policy == LengthPolicy.truncate),
              f"{key}.length_policy", self.length_policy,
              f"{key}.padding_free without {key}.packing does not truncate: use drop or error, or packing=true")
        if self.trl:
            self._check_trl(key)

    def _check_trl(self, key: str) -> None:
        """Every `trl` key is a field of TRL's config for this stage (imports TRL: only when `trl` is set)."""
        from trl import DPOConfig, SFTConfig

        known = {f.name for f in dataclasses.fields(SFTConfig if self.stage == TrainStage.sft else DPOConfig)}
        for name in self.trl:
            check(name in known, f"{key}.trl.{name}", self.trl[name], f"not a field of TRL's "
                  f"{'SFTConfig' if self.stage == TrainStage.sft else 'DPOConfig'}")


class BenchmarkKind(Choice):
    math, multiple_choice, synthetic, heldout = "math", "multiple_choice", "synthetic", "heldout"


@dataclass
class BenchmarkConfig(Section):
    """One benchmark (conf/benchmark/*.yaml, selected with `benchmark=NAME`): where its rows come from and how
    a row becomes a prompt and a gold answer.

    `path` (local JSONL; relative paths are tried from the current directory, then from the repository root) is
    used when the file exists, else `hub_name` (GPU clusters with Hub access). `fields` maps record names (id,
    problem, gold_answer) to the source's field names. Multiple-choice benchmarks (`choices` = the fields holding
    the options, the first being correct) are shuffled per row with a seeded RNG and graded as letters.
    """
    name: str = "math500"
    kind: BenchmarkKind = BenchmarkKind.math  # heldout: the data.heldout problems of a released set
    path: str | None = None
    hub_name: str | None = None
    hub_config: str | None = None
    split: str = "test"
    fields: dict[str, str] = field(default_factory=dict)
    choices: list[str] = field(default_factory=list)
    prompt_template: str = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."
    breakdown: list[str] = field(default_factory=list)  # row fields to report accuracy by (subject, level)


class Grading(Choice):
    convention, strict = "convention", "strict"


class Truncated(Choice):
    grade, wrong = "grade", "wrong"


@dataclass
class EvalConfig(Section):
    """Evaluation (dlcot.eval): benchmark, sampling, metrics. Sampling settings not set here come from `engine`."""
    MINIMUMS: ClassVar[dict[str, float]] = {"limit": 0, "n": 1, "max_new_tokens": 1, "temperature": 0,
                                            "chunk_size": 1, "checker_workers": 1, "checker_timeout_s": 0}
    name: str = "default"
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    limit: int | None = None
    n: int = 1  # samples per problem
    k: list[int] = field(default_factory=lambda: [1])  # pass@k / maj@k for each k <= n
    max_new_tokens: int | None = None  # None: engine.max_new_tokens
    temperature: float | None = None  # None: engine.temperature
    top_p: float | None = None  # None: engine.top_p
    chat: bool = True  # format prompts with the model's chat template (false: raw prompt text)
    system_prompt: str | None = None
    chunk_size: int = 64  # problems generated + scored + written per step (the resume granularity)
    markers: list[str] = field(default_factory=lambda: ["wait", "alternatively", "hmm", "double-check"])
    checker_workers: int = 1
    checker_timeout_s: float = 5.0  # CPU seconds per side of a math-verify check (dlcot.answers)
    grading: Grading = Grading.convention  # convention (the field's: boxed, marker, or the answer stated at the end)
    truncated: Truncated = Truncated.grade  # what a length-truncated output gets: grade (as peers do) | wrong

    def validate(self, key: str) -> None:
        super().validate(key)
        bad = [k for k in self.k if not 1 <= k <= self.n]
        check(not bad, f"{key}.k", list(self.k), f"every k in 1..{key}.n={self.n}")


@dataclass
class DecontaminateConfig(Section):
    """`dlcot decontaminate` (dlcot.data.decontaminate): drop training problems that share a word n-gram with
    these benchmarks' problems (open-r1's test: lowercase, whitespace-normalised 8-grams)."""
    benchmarks: list[str] = field(default_factory=lambda: ["math500", "aime24", "aime25", "gpqa_diamond"])
    ngram: int = 8
    MINIMUMS: ClassVar[dict[str, float]] = {"ngram": 1}


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
