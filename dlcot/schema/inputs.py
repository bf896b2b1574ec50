"""Where a run's inputs come from: data, teacher, CoT prompting, the student, and the engines that generate."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import MISSING

from dlcot.schema.base import Choice, Section, check


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
        # only these formats carry per-generation correctness flags: elsewhere correct_only would be ignored silently
        check(not self.correct_only or self.format in ("openr1", "s1k"), f"{key}.correct_only", True,
              f"{key}.format={self.format} has no correctness flags (only openr1 and s1k carry them)")


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
