"""Training (SFT, LoRA/QLoRA, DPO with cDPO), benchmarks, evaluation and decontamination."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dlcot.schema.base import Choice, Section, check


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
