"""DPO examples from preference pairs (`pairs.jsonl`): prompt / chosen / rejected texts in the student's template.

A pair becomes the SFT conversation twice (same user turns, same `<think>` assistant turn, `data.py`), rendered
with the student's training template and checked the same way (the trained span ends on EOS). TRL's DPOTrainer
gets plain texts cut from those renderings: `prompt` (the template up to the assistant's content) and the two
assistant turns ending on EOS, so the token ids it trains on are exactly the template's (checked per pair).

Common-prefix masking (Marco-o1 v2's fine-grained DPO, `train.prefix_masking`): pairs cut from one MCTS tree
share the thoughts up to the node where they part. That shared prefix, cut back to a line start so it ends on a
thought boundary, moves into the prompt: it is context, not completion, for every loss term. For the plain
sigmoid loss its tokens cancel between chosen and rejected anyway; masking matters for the SFT term (which then
trains the divergent steps), for length-normalised losses (ipo), and for bf16, where summing thousands of
shared log-probs that should cancel adds noise.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from dlcot.errors import ModelError
from dlcot.records import Counted, Pair, Reject, read_records
from dlcot.train.data import (
    account,
    assistant_content,
    check_turn_end,
    data_path,
    over_length,
    render,
    user_turns,
)


@dataclass
class PairData:
    """Rows TRL's DPOTrainer trains on (`prompt`, `chosen`, `rejected` texts), the pairs left out, counts."""
    rows: list[dict[str, str]]
    ids: list[str]
    rejects: list[Reject]
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dataset(self):
        from datasets import Dataset

        return Dataset.from_list(self.rows)


def shared_prefix(a: str, b: str) -> str:
    """The longest common prefix of two assistant turns, cut back to the start of a line (a thought boundary)."""
    common = os.path.commonprefix([a, b])
    return common[:common.rfind("\n") + 1]


def dpo_row(pair: Pair, tokenizer, train: DictConfig, student: DictConfig
             ) -> tuple[dict[str, str], list[int], int, int] | Reject:
    """(row, tokens of the chosen and rejected sequences, prompt tokens, of which shared prefix) or a Reject."""
    if pair.chosen.strip() == pair.rejected.strip():  # whatever the responses: no thought to prefer
        return Reject(pair.id, "identical_pair", "chosen and rejected are the same thought: nothing to prefer")
    user = user_turns(pair.problem, train)
    contents = []
    for side, thought, response in (("chosen", pair.chosen, pair.chosen_response),
                                    ("rejected", pair.rejected, pair.rejected_response)):
        content = assistant_content(pair.id, thought, response, pair.gold_answer, train, student)
        if isinstance(content, Reject):
            return Reject(pair.id, f"{side}_{content.reason}", f"{side}: {content.detail}")
        contents.append(content)
    prompt = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    shared = shared_prefix(*contents) if train.prefix_masking else ""
    context = prompt + shared
    if tokenizer.bos_token and context.startswith(tokenizer.bos_token) and \
            tokenizer(text="").input_ids[:1] == [tokenizer.bos_token_id]:
        context = context[len(tokenizer.bos_token):]  # TRL tokenizes text with special tokens: no second BOS
    row, lengths = {"prompt": context}, []
    for side, content in zip(("chosen", "rejected"), contents, strict=True):
        conv = [*user, {"role": "assistant", "content": content}]
        ids, mask = render(tokenizer, conv)
        check_turn_end(ids, mask, tokenizer, pair.id)
        row[side] = content[len(shared):] + tokenizer.eos_token
        trained = ids[:len(mask) - mask[::-1].index(1)]  # the template's tokens up to the end of the turn
        if tokenizer(text=context + row[side]).input_ids != trained:
            raise ModelError(f"pair {pair.id!r}: the {side} text tokenizes differently from the chat template's "
                             f"rendering of the same conversation (does {student.chat_template} render the prompt "
                             "alone differently, or add tokens the tokenizer adds again?); DPO would train on "
                             "other tokens than SFT and inference see")
        lengths.append(len(ids))
    n_context = len(tokenizer(text=context).input_ids)
    n_shared = n_context - len(tokenizer(text=context[:len(context) - len(shared)]).input_ids) if shared else 0
    return row, lengths, n_context, n_shared


def build_pair_data(cfg: DictConfig, tokenizer) -> PairData:
    """Read `cfg.train.data` (pairs JSONL), build DPO rows, apply the length policy; errors before training."""
    train, student = cfg.train, cfg.student
    path = data_path(train, "pairs.jsonl: id, problem, chosen, rejected, chosen_response, rejected_response")
    rows, ids, rejects = [], [], []
    counts: Counter[str] = Counter()
    records = Counted(read_records(path, Pair, mapping=dict(train.fields), limit=train.limit,
                                   fields_key="train.fields"))
    for rec in records:
        made = rec if isinstance(rec, Reject) else dpo_row(rec, tokenizer, train, student)
        if isinstance(made, Reject):
            rejects.append(made)
            continue
        row, lengths, prompt_tokens, shared_tokens = made
        verdict = over_length(max(lengths), prompt_tokens, train, path, rec.id)
        if isinstance(verdict, Reject):
            rejects.append(verdict)
            continue
        counts["truncated"] += verdict
        counts["tokens"] += sum(lengths)
        counts["shared_tokens"] += shared_tokens
        rows.append(row)
        ids.append(rec.id)
    stats = {**account(path, "preference pairs", records, len(rows), rejects, train),
             "truncated": counts["truncated"], "dataset_tokens": counts["tokens"],
             "prefix_masking": bool(train.prefix_masking), "shared_prefix_tokens": counts["shared_tokens"]}
    return PairData(rows, ids, rejects, stats)
