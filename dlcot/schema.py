"""Typed dataclass schemas of dlcot's config tree, one per config group, registered in Hydra's ConfigStore.

`conf/config.yaml` extends `dlcot_schema` (the `RootConfig` node), so every group option and recipe merges into
typed nodes: a misspelt key or a wrong type fails at composition, before any stage starts. Each stage reads
only its own group; how they are composed and where runs go is `dlcot.config`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class DataConfig:
    """Where problems/traces come from. `fields` maps our record names to the source's field names."""
    name: str = "synthetic"
    source: str = "synthetic"  # synthetic | jsonl | hub
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
    # Hub long-CoT datasets in their own schema (dlcot.data.adapters): openr1 | conversations | s1k | limo | messages
    format: str | None = None
    teacher_name: str | None = None  # the teacher label of a one-teacher dataset
    correct_only: bool = False  # keep only generations the dataset flags correct (openr1, s1k grades)
    teachers: list[str] = field(default_factory=list)  # s1k: trajectories to read (default gemini, deepseek)
    cache_dir: str | None = None  # streamed Hub rows (default $DLCOT_CACHE or ~/.cache/dlcot)


@dataclass
class TeacherConfig:
    """The model whose long CoT is distilled. `family` decides homologous vs nonhomologous students."""
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


@dataclass
class CotConfig:
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
    guide: str = "exemplar"  # exemplar | instruction (the sentences above)
    exemplar_info: str | None = None  # LLaMA-Factory dataset_info.json of the release
    exemplar_entries: dict[str, str] = field(default_factory=dict)  # "format[/level]" → entry ({level} filled)
    exemplar_row: int = 0  # which row of that entry (the next one when it is the problem itself)


@dataclass
class StudentConfig:
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
    dtype: str = "auto"  # auto | bfloat16 | float16 | float32
    gguf_file: str | None = None
    revision: str | None = None
    context_length: int | None = None  # the model's trained context: train.max_length above it is an error


@dataclass
class EngineConfig:
    """Text generation backend (dlcot.engines): hf | vllm | openai | scripted | replay.

    Sampling settings here are the defaults a stage passes to `Engine.generate`; temperature 0 means greedy.
    """
    name: str = "hf"
    batch_size: int = 8  # hf: sequences per forward pass
    chunk_size: int | None = None  # prompts per generate() call (written after each); None: batch_size
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    stop: list[str] = field(default_factory=list)
    dtype: str = "auto"  # hf / vllm weights dtype: auto | float32 | bfloat16 | float16
    device: str | None = None  # hf: cpu | cuda | cuda:1 ...; None picks cuda when available
    prefix_cache_mib: int = 1024  # hf: key/value states of prompt prefixes kept for reuse across calls; 0: off
    # openai-compatible servers
    base_url: str | None = None
    endpoint: str = "chat"  # chat (/chat/completions, server applies the chat template) | completions
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
    match: str = "id"  # replay: id (stored id == problem id) | problem (stored problem text found in the prompt)
    problem_field: str = "problem"
    rules: dict[str, str] = field(default_factory=dict)  # scripted: regex on the prompt -> response


@dataclass
class JudgeConfig:
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


@dataclass
class EnhanceConfig:
    """DLCoT simplification policy (dlcot.enhance, conf/enhance/*.yaml). The default option `dlcot` is the
    paper's full method: keep the trunk (everything up to the first correct approach), deduplicate the redundant
    spans after it, drop incorrect/incomplete approaches after it. The trunk, conclusion, restatement and
    understanding are never cut."""
    name: str = "dlcot"
    backend: str = "offline"  # offline (rule-based) | llm (judge: segments, labels, clusters) | hybrid (offline segs)
    after_trunk: str = "keep"  # keep | drop: approaches/checks after the first correct one (drop: keep_first_correct)
    dedup: str = "all"  # none | all | last_k: cut every / the last k redundant spans (later members of a cluster)
    dedup_k: int = 1
    drop_incorrect_offtrunk: bool = True  # cut incorrect/incomplete approaches after the trunk
    cut_error_spans: bool = False  # cut spans a backend marks as errors (the offline backend marks none)
    offtrunk_needs_error: bool = False  # SODE delete_all: drop an off-trunk non-correct approach only if it has errors
    no_correct: str = "reject"  # reject | keep_raw: traces whose final answer is right but no approach is correct
    rewrite: str = "none"  # none | llm: the judge rewrites each seam fluently (kept only if maths and answer survive)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    cluster_threshold: float = 0.2  # Jaccard of math-token bigrams (best F1 on the gold dev pairs, README)
    repair_connectives: bool = True  # drop a dangling leading connective at a seam ("Wait,", "Alternatively,")
    connectives: list[str] = field(default_factory=lambda: [
        "But wait a minute,", "But wait,", "Wait a minute,", "Wait a second,", "Wait,", "Hold on,", "Hmm,",
        "Alternatively,", "Again,", "Also,", "Still,", "But", "However,", "Anyway,"])
    workers: int = 2  # processes (both cores); 1 = in-process


@dataclass
class MctsStopConfig:
    """When one problem's search ends (official: 8 correct; > 32 rollouts with >= 4 correct; > 128 with fewer)."""
    solved: int = 8  # correct rollouts that end the search
    enough: int = 4
    enough_after: int = 32  # more rollouts than this, with >= `enough` correct, end it
    give_up_after: int = 128  # more rollouts than this, with < `enough` correct, give up
    max_rollouts: int = 256  # budget
    max_nodes: int = 4096  # budget on a tree's size (a writer that never finishes an answer)


@dataclass
class MctsPairsConfig:
    """Preference pairs from a tree: which correct path a wrong one is paired with."""
    prefix: str = "min"  # min: the correct path sharing the fewest nodes (paper) | max
    length: str = "balanced"  # balanced: chosen/rejected lengths close (paper's length selection) | any
    max: int = 4  # pairs per problem


@dataclass
class MctsConfig:
    """Marco-o1 v2 tree search over typed thought nodes (dlcot.mcts); `teacher.model` (and `writers`) write the
    nodes through `engine`, the verifier checks answers against gold. Official values in
    conf/mcts/marco_o1_v2.yaml."""
    name: str = "marco_o1_v2"
    reward: str = "answer_nodes"  # answer_nodes (official) | probe_every_node
    exploration: float = 1.414  # UCT's c in Q + c*sqrt(2 ln N / n)
    stop: MctsStopConfig = field(default_factory=MctsStopConfig)
    max_depth: int = 0  # 0: no cap
    node_max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    batch_problems: int = 16  # trees searched in lockstep: each step is one engine batch per writer for all of them
    writers: list[str] = field(default_factory=list)  # more node writers after teacher.model (multi-model)
    writer_mode: str = "roles"  # roles (kind → writer, official) | random
    roles: dict[str, int] = field(default_factory=dict)
    reflection: str = "fixed"  # fixed (official) | generated | generated_with_answer | none
    backtrack_under: str = "double_check"
    reflection_told: str = ""
    base_prompt: str = "{problem}"
    tags: dict[str, str] = field(default_factory=dict)
    phrases: dict[str, list[str]] = field(default_factory=dict)
    transfer: dict[str, dict[str, int]] = field(default_factory=dict)  # kind (or root) → {kind: children}
    length_quantile: float = 0.0  # Thoughts Length Balance: 0 shortest correct path .. 1 longest, as SFT data
    sft_length: str = "quantile"  # quantile (length_quantile) | shortest | median | longest: the paper's short/mid/long
    pairs: MctsPairsConfig = field(default_factory=MctsPairsConfig)
    from_trees: str = ""  # an earlier `dlcot mcts` run's directory: extract from its trees, no search


@dataclass
class LoraConfig:
    """PEFT LoRA/QLoRA; target modules come from the student (`student.lora_target_modules`) unless set here."""
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | None = None
    quantize_4bit: bool = False  # QLoRA: needs a CUDA GPU and bitsandbytes
    merge: bool = True  # save base + adapter merged (vLLM, sharing); the adapter itself goes to `adapter/`


@dataclass
class TrainConfig:
    """Training settings; TRL's SFTConfig/DPOConfig are built from this group in dlcot.train only."""
    name: str = "sft"
    stage: str = "sft"  # sft | dpo
    data: str | None = None  # SFT JSONL (traces.jsonl / enhanced.jsonl / sft.jsonl) or pairs JSONL
    fields: dict[str, str] = field(default_factory=dict)  # trace field -> source field (e.g. problem: question)
    thought: str = "auto"  # auto (a row's `enhanced` text when it has one, else `reasoning`) | enhanced | raw
    limit: int | None = None  # first N records of `data`
    system_prompt: str | None = None
    prompt_template: str = "{problem}"
    missing_response: str = "reject"  # reject | boxed_gold (`The final answer is \\boxed{gold}` after </think>)
    target: str = "think"  # think (<think>thought</think> response) | as_is (the teacher's text as it is: key factors)
    max_length: int = 4096
    length_policy: str = "drop"  # drop | truncate | error, for examples longer than max_length (tokens)
    packing: bool = False
    packing_strategy: str = "bfd"
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
    extra: dict[str, Any] = field(default_factory=dict)  # passed to TRL's config verbatim


@dataclass
class BenchmarkConfig:
    """One benchmark (conf/benchmark/*.yaml, selected with `benchmark=NAME`): where its rows come from and how
    a row becomes a prompt and a gold answer.

    `path` (local JSONL; relative paths are tried from the current directory, then from the repository root) is
    used when the file exists, else `hub_name` (GPU clusters with Hub access). `fields` maps record names (id,
    problem, gold_answer) to the source's field names. Multiple-choice benchmarks (`choices` = the fields holding
    the options, the first being correct) are shuffled per row with a seeded RNG and graded as letters.
    """
    name: str = "math500"
    kind: str = "math"  # math | multiple_choice | synthetic | heldout (data.heldout problems of a released set)
    path: str | None = None
    hub_name: str | None = None
    hub_config: str | None = None
    split: str = "test"
    fields: dict[str, str] = field(default_factory=dict)
    choices: list[str] = field(default_factory=list)
    prompt_template: str = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."
    breakdown: list[str] = field(default_factory=list)  # row fields to report accuracy by (subject, level)


@dataclass
class EvalConfig:
    """Evaluation (dlcot.eval): benchmark, sampling, metrics. Sampling settings not set here come from `engine`."""
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
    grading: str = "convention"  # convention (the field's: boxed, marker, or the answer stated at the end) | strict
    truncated: str = "grade"  # what a length-truncated output gets: grade (as peers do) | wrong


@dataclass
class DecontaminateConfig:
    """`dlcot decontaminate` (dlcot.data.decontaminate): drop training problems that share a word n-gram with
    these benchmarks' problems (open-r1's test: lowercase, whitespace-normalised 8-grams)."""
    benchmarks: list[str] = field(default_factory=lambda: ["math500", "aime24", "aime25", "gpqa_diamond"])
    ngram: int = 8


@dataclass
class WandbConfig:
    mode: str = "disabled"  # disabled | offline | online
    project: str = "dlcot"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class StageConfig:
    """One step of a recipe's chain (dlcot.chain): a command, its overrides, and how to launch it.

    Overrides may name earlier stages' output directories as `{stage_name}`; `launch` names an accelerate
    config (e.g. launch/zero3.yaml) to run the step as its own `accelerate launch` process.
    """
    name: str = MISSING
    command: str = MISSING
    overrides: list[str] = field(default_factory=list)
    launch: str | None = None
    share: bool = False  # generate / mcts / enhance: one output for the runs and sweep jobs that agree on what it reads


@dataclass
class RootConfig:
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


GROUPS = ("data", "teacher", "cot", "student", "engine", "enhance", "mcts", "train", "eval")

# Lower bounds of numeric keys, checked at composition (`dlcot.config.compose`): a negative count is a typo,
# not a request, and would otherwise surface as an empty run or a traceback deep in a stage.
MINIMUMS: dict[str, int] = {
    "data.n_problems": 0, "data.heldout": 0, "data.limit": 0, "data.min_steps": 1, "data.max_steps": 1,
    "data.max_operand": 1, "teacher.n": 1, "teacher.max_new_tokens": 1, "engine.batch_size": 1, "engine.n": 1,
    "engine.max_new_tokens": 1, "enhance.workers": 0, "enhance.dedup_k": 0, "train.limit": 0,
    "train.max_length": 1, "train.per_device_batch_size": 1, "train.gradient_accumulation_steps": 1,
    "train.save_steps": 1, "eval.limit": 0, "eval.n": 1, "eval.chunk_size": 1, "eval.checker_workers": 1,
    "engine.prefix_cache_mib": 0,
}


def expected_type(key: str) -> str | None:
    """The schema's type of a dotted key (`data.n_problems` → `int`), for error messages; None if unknown."""
    import dataclasses
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
    return getattr(hint, "__name__", None) if isinstance(hint, type) else str(hint).replace("typing.", "")

ConfigStore.instance().store(name="dlcot_schema", node=RootConfig)
