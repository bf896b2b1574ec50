"""Marco-o1 v2 MCTS (`dlcot mcts`) with a scripted node writer whose answers are right exactly when the path
double-checks or reflects: UCT bookkeeping, transfer matrix, probes, error backtracking, batching, Thoughts
Length Balance, prefix-sharing pairs, accounting and resume."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mcts_fixtures import Oracle

from dlcot.answers import AnswerChecker
from dlcot.config import compose
from dlcot.data.sources import synthetic_problems
from dlcot.errors import ConfigError
from dlcot.mcts.commands import run
from dlcot.mcts.extract import balanced, paths, preference_pairs
from dlcot.mcts.search import Searcher
from dlcot.mcts.tree import ANSWER, REFLECTION, Tree
from dlcot.records import Pair, Reject, Trace, read_records


def _cfg(tmp_path: Path, *overrides: str):
    return compose("mcts", ["engine=scripted", "data.n_problems=6", "mcts.iterations=6", "mcts.max_depth=4",
                            f"output={tmp_path / 'mcts'}", *overrides])


def _search(cfg, problems, oracle=None) -> tuple[list[Tree], Oracle, Searcher]:
    oracle = oracle or Oracle(problems)
    with AnswerChecker() as checker:
        searcher = Searcher([oracle], checker, cfg.mcts, seed=cfg.seed)
        return searcher.search(problems), oracle, searcher


def _subtree_answers(tree: Tree, node) -> list:
    out = [node] if node.kind == ANSWER else []
    for c in node.children:
        out += _subtree_answers(tree, tree.nodes[c])
    return out


def test_uct_prefers_value_then_exploration_and_skips_closed_nodes():
    tree = Tree("p", "q", "1")
    a = tree.add(tree.root, "thinking", "a", 1)
    b = tree.add(tree.root, "thinking", "b", 1)
    assert tree.select(1.0, 4) is a  # both unvisited: creation order
    for _ in range(9):
        tree.backup(a, 1.0)
    tree.backup(b, 0.0)
    assert tree.select(0.0, 4) is a  # pure exploitation
    assert tree.select(5.0, 4) is b  # rarely visited b wins on the exploration term
    assert tree.root.visits == 10 and tree.root.value == 9.0
    tree.add(a, "thinking", "a2", 1)
    assert tree.select(0.0, 2) is b  # at most 2 thoughts a path: a's only child is at the limit, so a is closed
    tree.add(b, ANSWER, "x", 1)
    assert tree.select(0.0, 2) is b  # an answer probe does not expand a node
    tree.add(b, "thinking", "b2", 1)
    assert tree.select(0.0, 2) is None


def test_search_keeps_the_invariants_of_mcts(tmp_path):
    cfg = _cfg(tmp_path)
    problems = synthetic_problems(cfg.data, cfg.seed)
    trees, oracle, searcher = _search(cfg, problems)
    transfer = cfg.mcts.transfer
    for tree in trees:
        assert len(tree.nodes) > 1
        for node in tree.nodes[1:]:
            parent = tree.nodes[node.parent]
            assert node.depth == parent.depth + 1
            if node.kind == ANSWER:
                assert parent.kind != ANSWER and not node.children
                checked = any(n.kind in ("double_check", REFLECTION) for n in tree.path(node))
                assert node.reward == float(checked) and node.answer is not None
                continue
            assert node.kind in transfer["root" if parent.id == 0 else parent.kind] or node.kind == REFLECTION
            assert node.depth <= cfg.mcts.max_depth
            probes = [c for c in node.children if tree.nodes[c].kind == ANSWER]
            assert len(probes) == 1  # every thought node was scored by exactly one answer probe
            thoughts = [tree.nodes[c] for c in node.children if tree.nodes[c].kind != ANSWER]
            if thoughts and tree.nodes[probes[0]].reward == 0.0:
                assert thoughts[0].kind == REFLECTION  # error backtracking: reflect where the answer went wrong
        for node in tree.nodes:  # backup: visits and value are the answers and rewards of the subtree
            below = _subtree_answers(tree, node)
            assert node.visits == len(below) and node.value == sum(a.reward for a in below)
    assert any(n.kind == REFLECTION for t in trees for n in t.nodes)
    # a backtracking reflection is told the wrong answer (an unplanned one is not)
    told = [p for kind, p in oracle.seen if kind == REFLECTION and "which is wrong" in p]
    assert told and all(re.search(r"led to the answer \S+7, which is wrong", p) for p in told)
    # one batch of 6 trees: two engine calls a round (expansions, then probes), never one per node
    assert oracle.calls <= 2 * cfg.mcts.iterations and oracle.prompts / oracle.calls > 6
    assert searcher.stats.generated == sum(len(t.nodes) - 1 for t in trees)


def test_a_tree_does_not_depend_on_its_batch(tmp_path):
    cfg = _cfg(tmp_path, "mcts.temperature=0.7")
    problems = synthetic_problems(cfg.data, cfg.seed)
    together, _, _ = _search(cfg, problems)
    alone = [_search(cfg, [p])[0][0] for p in problems]
    assert [t.to_dict() for t in together] == [t.to_dict() for t in alone]


def test_length_balance_and_pairs(tmp_path):
    cfg = _cfg(tmp_path, "mcts.iterations=8")
    trees, _, _ = _search(cfg, synthetic_problems(cfg.data, cfg.seed))
    tree = max(trees, key=lambda t: sum(p.correct for p in paths(t)))
    cands = paths(tree)
    good = sorted(p.tokens for p in cands if p.correct)
    assert len(good) >= 2 and good[0] < good[-1]
    assert balanced(cands, 0.0).tokens == good[0] and balanced(cands, 1.0).tokens == good[-1]
    pairs = preference_pairs(cands, max_pairs=3)
    assert 0 < len(pairs) <= 3
    for chosen, rejected in pairs:
        assert chosen.correct and not rejected.correct
        assert chosen.shared(rejected) == max(g.shared(rejected) for g in cands if g.correct)
        shared_text = "\n\n".join(n.text for n in rejected.nodes[:chosen.shared(rejected)])
        assert chosen.reasoning.startswith(shared_text) and rejected.reasoning.startswith(shared_text)
    depths = [c.shared(r) for c, r in pairs]
    assert depths == sorted(depths, reverse=True)


def test_mcts_command_accounts_for_every_problem_and_resumes(tmp_path):
    problems = synthetic_problems(compose("mcts", ["data.n_problems=6"]).data, 0)
    src = tmp_path / "problems.jsonl"
    lines = [json.dumps({"id": p.id, "problem": p.problem, "gold_answer": p.gold_answer}) for p in problems]
    src.write_text("\n".join([*lines[:3], "{not json", *lines[3:]]) + "\n")
    unsolvable = {problems[4].id}

    whole = run(_cfg(tmp_path, f"input={src}", "mcts.batch_problems=2", f"output={tmp_path / 'whole'}"),
                engines=[Oracle(problems, unsolvable)])
    stats = json.loads((whole / "stats.json").read_text())
    assert stats["n_input"] == 7 == stats["n_kept"] + stats["n_rejected"]
    assert stats["reject_reasons"] == {"bad_json": 1, "unsolved": 1} and stats["n_trees"] == 6
    assert stats["n_pairs"] > 0 and stats["node_kinds"]["reflection"] > 0
    sft = list(read_records(whole / "sft.jsonl", Trace))
    assert len(sft) == 5 and all(not isinstance(t, Reject) and t.gold_answer in t.response for t in sft)
    pairs = list(read_records(whole / "pairs.jsonl", Pair))
    assert pairs and all(p.chosen != p.rejected for p in pairs)

    # the engine dies on the second batch's first problem; the rerun searches only what was not written, and the
    # outputs are byte-identical to the uninterrupted run's
    cfg = _cfg(tmp_path, f"input={src}", "mcts.batch_problems=2", f"output={tmp_path / 'resumed'}")
    with pytest.raises(RuntimeError, match="engine died"):
        run(cfg, engines=[Oracle(problems, unsolvable, fail_on={problems[2].id})])
    assert len((tmp_path / "resumed" / "trees.jsonl.partial").read_text().splitlines()) == 2
    again, full = Oracle(problems, unsolvable), Oracle(problems, unsolvable)
    run(cfg, engines=[again])
    run(_cfg(tmp_path, f"input={src}", "mcts.batch_problems=2", f"output={tmp_path / 'count'}"), engines=[full])
    assert not any(prompt.startswith(problems[0].problem) for _, prompt in again.seen)
    assert again.prompts < full.prompts
    for name in ("trees.jsonl", "sft.jsonl", "pairs.jsonl", "rejected.jsonl"):
        assert (tmp_path / "resumed" / name).read_bytes() == (whole / name).read_bytes(), name


def test_bad_mcts_settings_stop_before_any_search(tmp_path):
    for override, message in [("+mcts.transfer.thinking=[answer]", "not thought kinds"),
                              ("mcts.transfer.hypothesis=[]", "no successors for \\['hypothesis'\\]"),
                              ("mcts.instructions.answer='give {gold}'", "only \\{wrong_answer\\}"),
                              ("mcts.length_quantile=2", "0 \\(shortest correct path\\)")]:
        with pytest.raises(ConfigError, match=message):
            run(_cfg(tmp_path, override), engines=[Oracle([])])
    with pytest.raises(ConfigError, match="set teacher.model"):
        run(_cfg(tmp_path, "engine=hf"))
    assert not (tmp_path / "mcts").exists()



def test_a_node_the_model_writes_nothing_under_is_not_expanded_again(tmp_path):
    cfg = _cfg(tmp_path, "mcts.iterations=5")
    problems = synthetic_problems(cfg.data, cfg.seed)[:1]
    oracle = Oracle(problems)
    oracle.respond = lambda prompt, sample: ""  # a model that stops at once
    oracle.engine.respond = oracle.respond
    (tree,), _, searcher = _search(cfg, problems, oracle)
    assert len(tree.nodes) == 1 and tree.root.barren
    assert oracle.calls == 1 and searcher.stats.empty == cfg.mcts.expand_k  # one round, then nothing is open


def test_thoughts_cut_at_the_token_limit_are_not_added(tmp_path):
    cfg = _cfg(tmp_path, "mcts.iterations=2", "mcts.node_max_tokens=4")
    problems = synthetic_problems(cfg.data, cfg.seed)[:2]
    trees, _, searcher = _search(cfg, problems)
    assert all(len(t.nodes) == 1 for t in trees)  # every "kind: step n of the work ..." is longer than 4 tokens
    assert searcher.stats.truncated == 2 * cfg.mcts.expand_k and searcher.stats.empty == 0


def test_two_node_writers_share_the_tree_and_another_one_reflects_on_a_wrong_answer(tmp_path):
    """Marco-o1 v2's multi-model collaboration: children are written by either model, a probe by its node's
    writer, a backtracking reflection by the other model; each round is one batch per writer."""
    cfg = _cfg(tmp_path)
    problems = synthetic_problems(cfg.data, cfg.seed)
    qwen, llama = Oracle(problems), Oracle(problems)
    with AnswerChecker() as checker:
        searcher = Searcher([qwen, llama], checker, cfg.mcts, seed=cfg.seed)
        trees = searcher.search(problems)
    assert qwen.calls and llama.calls and qwen.calls + llama.calls <= 2 * 2 * cfg.mcts.iterations
    assert searcher.stats.by_writer[0] + searcher.stats.by_writer[1] == searcher.stats.generated
    backtracks = 0
    for tree in trees:
        for node in tree.nodes[1:]:
            parent = tree.nodes[node.parent]
            if node.kind == ANSWER:
                assert node.writer == parent.writer
                continue
            probe = next(tree.nodes[c] for c in parent.children if tree.nodes[c].kind == ANSWER) \
                if parent.id else None
            first = next(tree.nodes[c] for c in parent.children if tree.nodes[c].kind != ANSWER)
            if probe is not None and probe.reward == 0.0 and node is first:
                assert node.kind == REFLECTION and node.writer != probe.writer
                backtracks += 1
    assert backtracks > 0
    assert {n.writer for t in trees for n in t.nodes[1:]} == {0, 1}
