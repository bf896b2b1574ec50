"""The two data-making stages: DLCoT enhance (with its LLM judge) and the Marco-o1 v2 tree search."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from dlcot.errors import ConfigError
from dlcot.schema.base import Choice, Section, check
from dlcot.schema.inputs import (
    EngineConfig,
)


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
