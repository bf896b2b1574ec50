"""`dlcot mcts input=F output=DIR`: problems → searched trees → `trees.jsonl`, `sft.jsonl`, `pairs.jsonl`,
`rejected.jsonl`, `stats.json` (docs/architecture.md §3).

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
from dlcot.data.sources import pending_problems, work_done_ids
from dlcot.engines import NEEDS_MODEL, Engine, make_engine
from dlcot.errors import ConfigError
from dlcot.mcts.extract import balanced, pair_record, pair_stats, paths, preference_pairs, trace_row
from dlcot.mcts.search import STOP_REASONS, TREE_COUNTS, Searcher
from dlcot.mcts.settings import sft_quantile
from dlcot.mcts.synthetic import SyntheticNodeWriter
from dlcot.mcts.tree import Tree
from dlcot.records import (
    Reject,
    ResumableJsonl,
    atomic_write_json,
    atomic_write_text,
    check_accounting,
    reopen_committed,
    write_jsonl,
)

PROGRESS = "engine_calls.json"  # engine calls of the batches whose trees are written, summed across resumes

log = logging.getLogger(__name__)


def run(cfg: DictConfig, engines: Sequence[Engine] | None = None) -> Path:
    """Search every problem of `input=` (or the data group); `engines` (one per node writer) replace the
    configured ones (tests)."""
    m = cfg.mcts  # its settings were checked at composition (dlcot.schema.MctsConfig.validate)
    if engines is None and cfg.engine.name == "openai" and cfg.engine.get("endpoint") == "chat":
        raise ConfigError("dlcot mcts with engine=openai: set engine.endpoint=completions; a node is written by "
                          "continuing the assistant turn, which a chat endpoint cannot do")
    if engines is None and cfg.engine.name in NEEDS_MODEL and not cfg.teacher.model and \
            cfg.teacher.name != "synthetic":
        raise ConfigError(f"dlcot mcts with engine={cfg.engine.name}: set teacher.model=<Hub name or path>, the "
                          "model that writes the thought nodes")
    if engines is None and cfg.teacher.name == "synthetic" and (cfg.teacher.get("model") or m.writers):
        raise ConfigError(f"teacher=synthetic writes the nodes by rule and would ignore teacher.model="
                          f"{cfg.teacher.get('model')} / mcts.writers={list(m.writers)}: choose an engine teacher "
                          "(e.g. teacher=qwen2_5_72b_instruct teacher.model=...) to search with a model")
    if m.from_trees:
        return reextract(cfg, Path(m.from_trees))
    out = prepare_run_dir(cfg)
    reopen_committed(out / "trees.jsonl", out / "rejected.jsonl")
    trees, rejects = ResumableJsonl(out / "trees.jsonl"), ResumableJsonl(out / "rejected.jsonl")
    done = trees.done_ids | work_done_ids(rejects)
    n_input, todo = pending_problems(cfg, rejects, done.__contains__)
    own = engines is None
    if own and cfg.teacher.name == "synthetic":
        d = cfg.data
        engines = [SyntheticNodeWriter(d.n_problems, cfg.seed, min_steps=d.min_steps, max_steps=d.max_steps,
                                       max_operand=d.max_operand, tokenizer_name=cfg.tokenizer)]
    elif own:
        engines = [make_engine(cfg.engine, model_path=model, tokenizer_name=cfg.tokenizer, seed=cfg.seed,
                               needs=cfg.teacher)
                   for model in (cfg.teacher.model, *m.writers)]
    resumed = trees.done_ids and (out / PROGRESS).is_file()  # else the search starts over, and so does the count
    calls = json.loads((out / PROGRESS).read_text()) if resumed else {"engine_calls": 0}
    log.info("mcts: %d problems to search (%d done before), reward %s, stop %s", len(todo), len(done), m.reward,
             dict(m.stop))
    try:
        with AnswerChecker() as checker:
            searcher = Searcher(engines, checker, m, seed=cfg.seed, system_prompt=cfg.teacher.system_prompt)
            step = max(1, m.batch_problems)
            for i in tqdm(range(0, len(todo), step), desc="mcts", unit="batch", disable=None):
                before = searcher.stats.engine_calls
                for tree in searcher.search(todo[i:i + step]):
                    trees.write(tree.to_dict())
                calls["engine_calls"] += searcher.stats.engine_calls - before
                atomic_write_json(out / PROGRESS, calls)
    finally:
        for engine in engines if own else ():
            engine.close()
        trees.close()
        rejects.close()
    trees.commit()
    rejects.commit()
    stats = extract(out, m, n_input, calls["engine_calls"], engines[0].tokenizer_name)
    atomic_write_json(out / "stats.json", stats)
    log.info("mcts: %d of %d problems solved, %d SFT traces, %d pairs → %s", stats["n_kept"], stats["n_trees"],
             stats["n_sft"], stats["n_pairs"], out)
    return out


def reextract(cfg: DictConfig, source: Path) -> Path:
    """`mcts.from_trees=DIR`: SFT traces and pairs by this config's rules from the trees an earlier `dlcot mcts`
    run searched (an ablation of the pair rules costs no search); its trees, input rejects and engine calls are
    copied, so the run directory is complete on its own."""
    stats_path = source / "stats.json"
    if not stats_path.is_file():
        raise ConfigError(f"mcts.from_trees={source}: no stats.json there; point it at a finished `dlcot mcts` run")
    out = prepare_run_dir(cfg)
    for name in ("trees.jsonl", PROGRESS):
        atomic_write_text(out / name, (source / name).read_text(encoding="utf-8"))
    rejected = [r for r in (source / "rejected.jsonl").read_text(encoding="utf-8").splitlines()
                if r.strip() and json.loads(r)["reason"] != "unsolved"]  # input rejects; extract adds the unsolved
    atomic_write_text(out / "rejected.jsonl", "".join(f"{r}\n" for r in rejected))
    before = json.loads(stats_path.read_text())
    stats = extract(out, cfg.mcts, before["n_input"], before["engine_calls"], before["tokenizer"])
    atomic_write_json(out / "stats.json", {**stats, "from_trees": str(source)})
    return out


def extract(out: Path, m: DictConfig, n_input: int, engine_calls: int, tokenizer: str) -> dict:
    """sft.jsonl + pairs.jsonl from every tree of trees.jsonl; unsolved problems join rejected.jsonl. Every
    figure is summed over the trees of trees.jsonl, so it covers all the runs that wrote them (resumes)."""
    sft, pairs, unsolved = [], [], []
    kinds: Counter[str] = Counter()
    search: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    n_trees = n_answers = n_correct = 0
    with (out / "trees.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            tree = Tree.from_dict(json.loads(line))
            n_trees += 1
            kinds.update(n.kind for n in tree.nodes[1:])
            search.update({k: tree.search.get(k, 0) for k in TREE_COUNTS})
            reasons[tree.search.get("stop_reason", "unknown")] += 1
            candidates = paths(tree)
            good = sum(p.correct for p in candidates)
            n_answers, n_correct = n_answers + len(candidates), n_correct + good
            best = balanced(candidates, sft_quantile(m))
            if best is None:
                unsolved.append(Reject(tree.problem_id, "unsolved", f"no correct answer among {len(candidates)} "
                                       f"answer nodes of {len(tree.nodes) - 1} nodes"))
                continue
            sft.append(trace_row(tree, best, good))
            chosen = preference_pairs(candidates, m.pairs.prefix, m.pairs.length, m.pairs.max)
            pairs += [pair_record(tree, k, c, r) for k, (c, r) in enumerate(chosen)]
    input_rejects = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines() if line.strip()]
    rejected = input_rejects + [{"id": r.id, "reason": r.reason, "detail": r.detail} for r in unsolved]
    check_accounting(out, n_input, len(sft), len(rejected))
    write_jsonl(out / "sft.jsonl", sft)
    write_jsonl(out / "pairs.jsonl", pairs)
    write_jsonl(out / "rejected.jsonl", rejected)
    return {"n_input": n_input, "n_kept": len(sft), "n_rejected": len(rejected),
            "reject_reasons": dict(Counter(r["reason"] for r in rejected)),
            "n_trees": n_trees, "solve_rate": len(sft) / n_trees if n_trees else 0.0,
            "stop_reasons": {r: reasons[r] for r in (*STOP_REASONS, "unknown") if reasons[r]},
            "n_nodes": sum(kinds.values()), "node_kinds": dict(kinds), "n_answers": n_answers,
            "answer_accuracy": n_correct / n_answers if n_answers else 0.0, "reward": m.reward,
            "n_sft": len(sft), "n_pairs": len(pairs), "length_quantile": sft_quantile(m),
            "pairs_rule": dict(m.pairs), **pair_stats(pairs),
            "sft_tokens_mean": mean(r["tokens"] for r in sft) if sft else None,
            **{k: search[k] for k in TREE_COUNTS},
            "engine_calls": engine_calls,
            "rollouts_per_engine_call": search["rollouts"] / engine_calls if engine_calls else None,
            "tokenizer": tokenizer}
