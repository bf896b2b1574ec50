"""SFT examples from teacher traces (raw `traces.jsonl` or DLCoT `enhanced.jsonl`) as conversations.

One trace becomes `[user: prompt_template(problem), assistant: <think>\\n reasoning \\n</think>\\n\\n response]`.
Every example is rendered and tokenized here with the student's training template once, so that

- the length policy sees real token counts: over `train.max_length` an example is dropped (a `too_long`
  reject), kept for TRL to truncate (counted as `truncated`), or stops the run (`error`); peers truncate the
  reasoning silently, we count every case in `train_stats.json`;
- template faults stop the run before training: no assistant tokens in the mask (no `{% generation %}`
  markers), or an assistant turn that does not end on the student's EOS (students that never stop).

TRL re-tokenizes the `messages` column itself (`assistant_only_loss=True`); the test suite checks that its
labels are exactly the assistant mask computed the same way here.
"""
from __future__ import annotations

import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dlcot.errors import ConfigError, ModelError, RecordError
from dlcot.prompts import fill
from dlcot.records import Counted, Reject, Trace, check_accounting, read_records

log = logging.getLogger(__name__)


@dataclass
class SFTData:
    """Conversations TRL trains on, the traces left out (with reasons), and counts for `train_stats.json`."""
    messages: list[list[dict[str, str]]]
    ids: list[str]
    rejects: list[Reject]
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dataset(self):
        from datasets import Dataset

        return Dataset.from_dict({"messages": self.messages})


def thought_text(trace: Trace, train: DictConfig) -> str | Reject:
    """The thought to distill: DLCoT's `enhanced` text (rows of enhanced.jsonl) or the raw `reasoning`."""
    enhanced = trace.extra.get("enhanced")
    if train.thought == "raw" or (train.thought == "auto" and not isinstance(enhanced, str)):
        return trace.reasoning
    if not isinstance(enhanced, str):
        return Reject(trace.id, "no_enhanced", "train.thought=enhanced but the row has no string `enhanced` field "
                      "(is this an enhanced.jsonl from `dlcot enhance`?)")
    return enhanced


def assistant_text(trace: Trace, train: DictConfig, student: DictConfig) -> str | Reject:
    """The SFT assistant turn of a trace (its DLCoT-enhanced or raw thought, then the response)."""
    reasoning = thought_text(trace, train)
    if isinstance(reasoning, Reject):
        return reasoning
    return assistant_content(trace.id, reasoning, trace.response, trace.gold_answer, train, student)


def assistant_content(rid: str, reasoning: str, response: str | None, gold_answer: str | None, train: DictConfig,
                      student: DictConfig) -> str | Reject:
    """`<think>\\n thought \\n</think>\\n\\n response`, or with `train.target=as_is` the teacher's text as it is
    (thought, then the response if any: the key-factors paper's target), or a Reject when there is nothing to learn."""
    if train.target == "as_is":
        text = reasoning.strip() if not (response or "").strip() else f"{reasoning.strip()}\n\n{response.strip()}"
        return text if text.strip() else Reject(rid, "empty_assistant", "the teacher text is empty")
    reasoning = reasoning.strip()
    response = (response or "").strip()
    gold = (gold_answer or "").strip()
    if not response and train.missing_response == "boxed_gold" and gold:
        response = f"The final answer is $\\boxed{{{gold}}}$."
    if not reasoning and not response:
        return Reject(rid, "empty_assistant", "reasoning and response are both empty: no assistant text")
    if not response:
        return Reject(rid, "no_response", "no response after the thought (an unfinished trace?); "
                      "train.missing_response=boxed_gold ends it with the gold answer instead")
    return f"{student.think_open}\n{reasoning}\n{student.think_close}\n\n{response}"


def user_turns(problem: str, train: DictConfig) -> list[dict[str, str]]:
    """The conversation before the assistant turn: optional system prompt, then the problem as the user."""
    user = fill(train.prompt_template, "train.prompt_template", problem=problem)
    msgs = [{"role": "user", "content": user}]
    if train.system_prompt:
        msgs.insert(0, {"role": "system", "content": train.system_prompt})
    return msgs


def conversation(trace: Trace, train: DictConfig, student: DictConfig) -> list[dict[str, str]] | Reject:
    content = assistant_text(trace, train, student)
    if isinstance(content, Reject):
        return content
    return [*user_turns(trace.problem, train), {"role": "assistant", "content": content}]


def render(tokenizer, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """(input_ids, assistant mask) exactly as TRL's `assistant_only_loss` computes them."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    return list(out["input_ids"]), list(out["assistant_masks"])


def check_turn_end(ids: list[int], mask: list[int], tokenizer, example_id: str) -> None:
    """The trained span must exist and end on the EOS token, or the student never learns to stop."""
    if 1 not in mask:
        raise ModelError(f"example {example_id!r}: the chat template marks no assistant tokens; it needs "
                         "{% generation %}...{% endgeneration %} around the assistant content (see "
                         "dlcot/train/templates/)")
    last = len(mask) - 1 - mask[::-1].index(1)
    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    if ids[last] != eos_id:
        raise ModelError(f"example {example_id!r}: the trained assistant span ends on "
                         f"{tokenizer.convert_ids_to_tokens(ids[last])!r}, not the eos token {tokenizer.eos_token!r}; "
                         "put the end-of-turn token inside {% generation %} or set student.eos_token")


def data_path(train: DictConfig, kinds: str, *, required: bool = True) -> Path:
    """`train.data` (the options' values were checked at composition, `dlcot.schema.TrainConfig`)."""
    if not train.data and required:
        raise ConfigError(f"train.data is not set: pass train.data=PATH ({kinds})")
    return Path(train.data or ".")


def over_length(n_tokens: int, prompt_tokens: int, train: DictConfig, path: Path, rid: str) -> Reject | bool:
    """The length policy for one example: False (fits), True (TRL truncates it; counted), a Reject (dropped),
    or a RecordError (`error`). A prompt that alone fills max_length leaves nothing to train: dropped."""
    if n_tokens <= train.max_length:
        return False
    if train.length_policy == "error":
        raise RecordError(f"{path}: id {rid!r}: {n_tokens} tokens > train.max_length={train.max_length} "
                          "(length_policy=error); raise max_length or use length_policy=drop|truncate", path=path)
    if train.length_policy == "drop" or prompt_tokens >= train.max_length:
        reason = "too_long" if train.length_policy == "drop" else "prompt_too_long"
        return Reject(rid, reason, f"{n_tokens} tokens ({prompt_tokens} prompt) > max_length={train.max_length}")
    return True


def account(path: Path, what: str, records: Counted, n_kept: int, rejects: list[Reject], train: DictConfig
            ) -> dict[str, Any]:
    """The counts every stage's data reports: `n_input` is what the shared input counter (`records.Counted`) saw
    read, checked like every other stage's against n_kept + n_rejected (`records.check_accounting`), rejects by
    reason; a RecordError, before any training, when nothing is left or a record was lost."""
    n_input = records.n
    check_accounting(path, n_input, n_kept, len(rejects))
    reasons = Counter(r.reason for r in rejects)
    if not n_kept:
        detail = "; ".join(f"{r.id}: {r.reason} ({r.detail})" for r in rejects[:3])
        raise RecordError(f"no usable {what}: {n_input} read, all rejected {dict(reasons)}"
                          + (f"; e.g. {detail}" if detail else ""), path=path)
    log.info("%s %s: %d kept of %d (%s)", what, path, n_kept, n_input, dict(reasons) or "no rejects")
    return {"data": str(path), "n_input": n_input, "n_kept": n_kept, "n_rejected": len(rejects),
            "reject_reasons": dict(reasons), "length_policy": train.length_policy, "max_length": train.max_length,
            "dropped_by_length": reasons.get("too_long", 0) + reasons.get("prompt_too_long", 0)}


def build_sft_data(cfg: DictConfig, tokenizer) -> SFTData:
    """Read `cfg.train.data`, build conversations, apply the length policy; errors before any training."""
    train, student = cfg.train, cfg.student
    if not train.data and cfg.data.get("format"):  # `dlcot train data=openthoughts`: the dataset's traces
        from dlcot.data.sources import traces_file

        train.data = str(traces_file(cfg))
    released = cfg.data.source == "llamafactory" and not train.data  # key factors: a dataset_info.json entry
    path = data_path(train, "traces.jsonl, enhanced.jsonl or sft.jsonl; or data=kf_*", required=not released)
    messages, ids, rejects = [], [], []
    counts: Counter[str] = Counter()
    source = {}
    if released or path.suffix == ".json":  # a JSON array (LLaMA-Factory format): gold from `The answer is N`
        from dlcot.data.llamafactory import Entry, read_traces, training_traces

        path, records, source = training_traces(cfg) if released else (
            path, read_traces(Entry(path.stem, path, prompt=train.fields.get("problem", "instruction"),
                               response=train.fields.get("reasoning", "output"))), {"file": str(path)})
        records = itertools.islice(records, train.limit)
    else:
        records = read_records(path, Trace, mapping=dict(train.fields), limit=train.limit, fields_key="train.fields")
    records = Counted(records)
    for rec in records:
        conv = rec if isinstance(rec, Reject) else conversation(rec, train, student)
        if isinstance(conv, Reject):
            rejects.append(conv)
            continue
        tok_ids, mask = render(tokenizer, conv)
        check_turn_end(tok_ids, mask, tokenizer, rec.id)
        n_tokens, n_assistant = len(tok_ids), sum(mask)
        verdict = over_length(n_tokens, mask.index(1), train, path, rec.id)
        if isinstance(verdict, Reject):
            rejects.append(verdict)
            continue
        if verdict:
            counts["truncated"] += 1
            counts["tokens_truncated"] += n_tokens - train.max_length
            n_assistant = sum(mask[:train.max_length])
            n_tokens = train.max_length
        messages.append(conv)
        ids.append(rec.id)
        counts["enhanced"] += train.thought != "raw" and isinstance(rec.extra.get("enhanced"), str)
        counts["answer_mismatch"] += rec.extra.get("answer_mismatch") is True  # released rows: teacher != gold
        counts["tokens"] += n_tokens
        counts["assistant_tokens"] += n_assistant
    stats = {**account(path, "SFT examples", records, len(messages), rejects, train),
             "truncated": counts["truncated"],
             "tokens_truncated": counts["tokens_truncated"], "dataset_tokens": counts["tokens"],
             "dataset_assistant_tokens": counts["assistant_tokens"], "thought": train.thought,
             "n_enhanced_thoughts": counts["enhanced"], "target": train.target}
    if source:
        stats["source"] = {**source, "n_answer_mismatch": counts["answer_mismatch"]}
    return SFTData(messages, ids, rejects, stats)
