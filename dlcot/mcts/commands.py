"""`dlcot mcts input=F output=DIR`: problems → searched trees → `trees.jsonl`, `sft.jsonl`, `pairs.jsonl`,
`rejected.jsonl`, `stats.json` (DESIGN.md §3).

The nodes are written by `teacher.model` and any `mcts.writers` through `engine` (vllm / hf / openai; the
scripted engine in tests). With several vLLM writers in one process, lower `engine.gpu_memory_utilization` so
they fit together, or serve them behind one OpenAI-compatible endpoint (`engine=openai`);
the verifier is `dlcot.answers` against each problem's gold answer. Trees are written one per problem as each
batch finishes, so a crashed run resumes with the problems not yet searched; `sft.jsonl` and `pairs.jsonl` are
then made from every tree in `trees.jsonl`. A problem with no correct answer anywhere in its tree is rejected
as `unsolved` (its tree is still in `trees.jsonl`): n_input = n_kept (solved) + n_rejected.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from statistics import mean

from omegaconf import DictConfig
from tqdm import tqdm

from dlcot.answers import AnswerChecker
from dlcot.config import prepare_run_dir
from dlcot.data.sources import pending_problems
from dlcot.engines import NEEDS_MODEL, Engine, make_engine
from dlcot.errors import ConfigError
from dlcot.mcts.extract import balanced, pair_row, paths, preference_pairs, trace_row
from dlcot.mcts.search import Searcher, SearchStats
from dlcot.mcts.tree import BACKTRACK, KINDS, Tree, check_transfer
from dlcot.records import Reject, ResumableJsonl, atomic_write_json, write_jsonl

log = logging.getLogger(__name__)


def check_settings(m: DictConfig) -> None:
    check_transfer(m.transfer)
    for kind in (*KINDS, BACKTRACK):
        if kind not in m.instructions:
            raise ConfigError(f"mcts.instructions.{kind} is not set: the instruction that asks for a {kind} node")
        try:
            m.instructions[kind].format(wrong_answer="x")
        except (KeyError, IndexError) as err:
            raise ConfigError(f"mcts.instructions.{kind}: only {{wrong_answer}} may be named (double other braces: "
                              f"\\\\boxed{{{{...}}}}); got {err}") from err
    if not 0 <= m.length_quantile <= 1:
        raise ConfigError(f"mcts.length_quantile={m.length_quantile}: 0 (shortest correct path) .. 1 (longest)")
    if m.expand_k < 1 or m.iterations < 1 or m.max_depth < 1:
        raise ConfigError("mcts.expand_k, mcts.iterations and mcts.max_depth must be >= 1")


def run(cfg: DictConfig, engines: Sequence[Engine] | None = None) -> Path:
    """Search every problem of `input=` (or the data group); `engines` (one per node writer) replace the
    configured ones (tests)."""
    m = cfg.mcts
    check_settings(m)
    if engines is None and cfg.engine.name in NEEDS_MODEL and not cfg.teacher.model:
        raise ConfigError(f"dlcot mcts with engine={cfg.engine.name}: set teacher.model=<Hub name or path>, the "
                          "model that writes the thought nodes")
    out = prepare_run_dir(cfg)
    trees, rejects = ResumableJsonl(out / "trees.jsonl"), ResumableJsonl(out / "rejected.jsonl")
    done = trees.done_ids | rejects.done_ids
    n_input, todo = pending_problems(cfg, rejects, done.__contains__)
    own = engines is None
    if own:
        engines = [make_engine(cfg.engine, model_path=model, tokenizer_name=cfg.tokenizer, seed=cfg.seed,
                               needs=cfg.teacher)
                   for model in (cfg.teacher.model, *m.writers)]
    log.info("mcts: %d problems to search (%d done before), %d iterations x %d children", len(todo),
             len(done), m.iterations, m.expand_k)
    try:
        with AnswerChecker() as checker:
            searcher = Searcher(engines, checker, m, seed=cfg.seed, system_prompt=cfg.teacher.system_prompt)
            step = max(1, m.batch_problems)
            for i in tqdm(range(0, len(todo), step), desc="mcts", unit="batch", disable=None):
                for tree in searcher.search(todo[i:i + step]):
                    trees.write(tree.to_dict())
    finally:
        for engine in engines if own else ():
            engine.close()
        trees.close()
        rejects.close()
    trees.commit()
    rejects.commit()
    stats = extract(out, m, n_input, searcher.stats, engines[0].tokenizer_name)
    atomic_write_json(out / "stats.json", stats)
    log.info("mcts: %d of %d problems solved, %d SFT traces, %d pairs → %s", stats["n_kept"], stats["n_trees"],
             stats["n_sft"], stats["n_pairs"], out)
    return out


def extract(out: Path, m: DictConfig, n_input: int, search: SearchStats, tokenizer: str) -> dict:
    """sft.jsonl + pairs.jsonl from every tree of trees.jsonl; unsolved problems join rejected.jsonl."""
    sft, pairs, unsolved = [], [], []
    kinds: Counter[str] = Counter()
    n_trees = n_answers = n_correct = 0
    with (out / "trees.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            tree = Tree.from_dict(json.loads(line))
            n_trees += 1
            kinds.update(n.kind for n in tree.nodes[1:])
            candidates = paths(tree)
            good = sum(p.correct for p in candidates)
            n_answers, n_correct = n_answers + len(candidates), n_correct + good
            best = balanced(candidates, m.length_quantile)
            if best is None:
                unsolved.append(Reject(tree.problem_id, "unsolved", f"no correct answer among {len(candidates)} "
                                       f"answer probes of {len(tree.nodes) - 1} nodes"))
                continue
            sft.append(trace_row(tree, best, good))
            pairs += [pair_row(tree, k, c, r) for k, (c, r) in enumerate(preference_pairs(candidates, m.max_pairs))]
    input_rejects = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines() if line.strip()]
    rejected = input_rejects + [{"id": r.id, "reason": r.reason, "detail": r.detail} for r in unsolved]
    write_jsonl(out / "sft.jsonl", sft)
    write_jsonl(out / "pairs.jsonl", pairs)
    write_jsonl(out / "rejected.jsonl", rejected)
    return {"n_input": n_input, "n_kept": len(sft), "n_rejected": len(rejected),
            "reject_reasons": dict(Counter(r["reason"] for r in rejected)),
            "n_trees": n_trees, "solve_rate": len(sft) / n_trees if n_trees else 0.0,
            "n_nodes": sum(kinds.values()), "node_kinds": dict(kinds), "n_answers": n_answers,
            "answer_accuracy": n_correct / n_answers if n_answers else 0.0,
            "n_sft": len(sft), "n_pairs": len(pairs), "length_quantile": m.length_quantile,
            "sft_tokens_mean": mean(r["tokens"] for r in sft) if sft else None,
            "pair_shared_nodes_mean": mean(p["shared_nodes"] for p in pairs) if pairs else None,
            "engine_calls": search.engine_calls, "generated": search.generated,
            "generated_tokens": search.generated_tokens, "empty_generations": search.empty,
            "truncated_generations": search.truncated, "generated_by_writer": search.by_writer,
            "tokenizer": tokenizer}
