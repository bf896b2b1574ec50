"""Marco-o1 v2 MCTS (`dlcot mcts`) with a scripted node writer: the official search (transfer counts, tags and
preset phrases in the assistant turn, answer-node rewards, UCT, stop rules at their exact counts, fixed reflection
under the nearest double-check, second-model roles), its options, pairs and SFT path choice, accounting and
resume."""
from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from mcts_fixtures import Oracle

from dlcot.answers import AnswerChecker
from dlcot.config import compose
from dlcot.data.sources import synthetic_problems
from dlcot.errors import ConfigError
from dlcot.mcts.commands import run
from dlcot.mcts.extract import Path as TreePath
from dlcot.mcts.extract import balanced, preference_pairs
from dlcot.mcts.search import Searcher, stop_reason
from dlcot.mcts.settings import sft_quantile
from dlcot.mcts.tree import ANSWER, REFLECTION, ROOT, Node, Tree
from dlcot.records import Pair, Reject, Trace, read_records


def _cfg(tmp_path: Path, *overrides: str):
    return compose("mcts", ["engine=scripted", "data.n_problems=4", f"output={tmp_path / 'mcts'}", *overrides])


def _search(cfg, problems, *oracles) -> tuple[list[Tree], list[Oracle], Searcher]:
    oracles = list(oracles) or [Oracle(problems)]
    with AnswerChecker() as checker:
        searcher = Searcher(oracles, checker, cfg.mcts, seed=cfg.seed)
        return searcher.search(problems), oracles, searcher


def _kids(tree: Tree, node: Node) -> list[Node]:
    return [tree.nodes[c] for c in node.children]


def _answers(tree: Tree) -> list[Node]:
    return [n for n in tree.nodes if n.kind == ANSWER]


def test_uct_is_the_official_formula_with_unvisited_first_and_a_random_tie_break():
    tree = Tree("p", "q", "1")
    a, b, c = (tree.add(tree.root, "thinking", x, 1) for x in "abc")
    rng = random.Random(0)
    assert tree.best_child(tree.root, 1.414, rng, True) is a  # unvisited: creation order
    for node, reward in ((a, 1.0), (b, 0.0), (c, 0.0)):
        tree.backup(node, reward)
    for _ in range(3):
        tree.backup(a, 1.0)
    # N = 6: a (4 visits, Q 1) scores 1 + c*sqrt(2 ln 6 / 4) = 2.338, b and c (1 visit, Q 0) c*sqrt(2 ln 6) = 2.677;
    # without the 2 (c*sqrt(ln N / n), dlcot's earlier rule) a would win: 1.946 against 1.893
    assert tree.best_child(tree.root, 1.414, rng, True) in (b, c)
    assert tree.best_child(tree.root, 1.0, rng, True) is a  # 1.946 against 1.893
    picks = Counter(tree.best_child(tree.root, 1.414, random.Random(s), True).text for s in range(40))
    assert set(picks) == {"b", "c"}  # b and c tie exactly: the seeded RNG breaks it, both get picked


def test_the_default_search_is_the_official_one(tmp_path):
    cfg = _cfg(tmp_path)
    problems = synthetic_problems(cfg.data, cfg.seed)
    qwen, llama = Oracle(problems), Oracle(problems)
    trees, _, searcher = _search(cfg, problems, qwen, llama)
    m = searcher.cfg  # the plain values the search read
    assert m.exploration == 1.414 and m.top_p == 0.9 and m.reward == "answer_nodes"
    for tree in trees:
        for node in tree.nodes:
            kids = _kids(tree, node)
            if node.kind == ANSWER:
                assert not kids and node.reward in (0.0, 1.0)
                assert node.text.startswith("<answer>The answer is:") and node.text.endswith("</answer>")
                continue
            assert node.reward is None  # only answer nodes are rewarded
            planned = Counter(k.kind for k in kids if k.kind != REFLECTION or node.kind != "double_check")
            if node.expanded:  # children created all at once, the matrix's counts
                assert planned == Counter(dict(m.transfer["root" if node.kind == ROOT else node.kind]))
            # a rollout passes through exactly one child: visits add up, value is the rewards below
            if kids:
                assert node.visits == sum(k.visits for k in kids)
                assert node.value == sum(k.value for k in kids)
            if node.kind != ROOT:
                tag = m.tags[node.kind]
                assert node.text.startswith(f"<{tag}>") and node.text.endswith(f"</{tag}>")
                assert any(node.text[len(tag) + 2:].startswith(p) for p in m.phrases[node.kind] or [""])
                # roles: double-check, reflection and thinking-from-scratch by the second model
                assert node.writer == (1 if node.kind in ("double_check", REFLECTION, "thinking_from_scratch")
                                       else 0)
        reflections = [n for n in tree.nodes if n.kind == REFLECTION]
        wrong = [a for a in _answers(tree) if a.reward == 0.0]
        assert reflections and len(reflections) == tree.search["reflections"] >= len(wrong)
        for r in reflections:  # fixed text, under a double-check, never written by a model
            assert tree.nodes[r.parent].kind == "double_check" and r.tokens == 0
            assert r.text in {f"<reflection>{p}" for p in m.phrases[REFLECTION]}
        assert tree.root.visits == tree.search["rollouts"] and tree.root.value == tree.search["correct"]
        assert tree.search["stop_reason"] == "solved" and tree.search["correct"] == m.stop.solved
    assert not any(kind == REFLECTION for o in (qwen, llama) for kind, _ in o.seen)
    # the writer continues its own assistant turn: user message (base prompt + problem), the path, the node's head
    for kind, prompt in qwen.seen + llama.seen:
        assert prompt.startswith(m.base_prompt.replace("{problem}", "").split("Problem:")[0])
        assert prompt.rstrip().endswith(tuple(f"<{m.tags[kind]}>{p}".rstrip() for p in m.phrases[kind] or [""]))
    assert all(set(s) == {f"</{t}>" for t in m.tags.values()} for s in qwen.stops)
    # lockstep: one batch per writer per step, several trees per batch
    calls = qwen.calls + llama.calls
    assert searcher.stats.engine_calls == calls and (qwen.prompts + llama.prompts) / calls > 2
    assert sum(t.search["rollouts"] for t in trees) / calls > 1  # revisited answers need no engine call


def test_stop_rules_in_official_order():
    stop = compose("mcts", []).mcts.stop
    assert [stop_reason(n, k, stop) for n, k in [(32, 4), (33, 4), (33, 3), (128, 3), (129, 3), (129, 4),
                                                (7, 8), (33, 8), (20, 3)]] == \
        [None, "enough_after", None, None, "gave_up", "enough_after", "solved", "enough_after", None]


@pytest.mark.parametrize("overrides, right, reason, rollouts", [
    ([], lambda path: False, "gave_up", 129),  # official: > 128 rollouts, fewer than 4 correct
    (["mcts.stop.solved=50", "mcts.stop.enough=2", "mcts.stop.enough_after=10", "mcts.stop.give_up_after=20"],
     lambda path: True, "enough_after", 11),
    (["mcts.stop.solved=3", "mcts.stop.enough=2"], lambda path: True, "solved", 3),
    (["mcts.stop.max_rollouts=5"], lambda path: False, "budget", 5),
], ids=["gave_up", "enough_after", "solved", "budget"])
def test_each_stop_rule_fires_at_its_exact_count(tmp_path, overrides, right, reason, rollouts):
    cfg = _cfg(tmp_path, *overrides)
    problems = synthetic_problems(cfg.data, cfg.seed)[:1]
    (tree,), _, _ = _search(cfg, problems, Oracle(problems, right=right))
    assert tree.search["stop_reason"] == reason and tree.search["rollouts"] == rollouts
    assert tree.root.visits == rollouts


def test_a_tree_does_not_depend_on_its_batch(tmp_path):
    cfg = _cfg(tmp_path)
    problems = synthetic_problems(cfg.data, cfg.seed)
    together, _, _ = _search(cfg, problems)
    alone = [_search(cfg, [p])[0][0] for p in problems]
    assert [t.to_dict() for t in together] == [t.to_dict() for t in alone]


class _WholeNodes:
    """The tiny random model never writes a closing tag: its node-size outputs count as whole nodes."""

    def __init__(self, engine):
        self.engine = engine

    def generate(self, prompts, **kw):
        done = self.engine.generate(prompts, **kw)
        return [[dataclasses.replace(c, finish_reason="stop") for c in cs] for cs in done]

    def __getattr__(self, name):
        return getattr(self.engine, name)


def test_hf_trees_do_not_depend_on_their_batch_or_on_the_prefix_cache(tmp_path, tiny_qwen_dir):
    """With the hf engine (per-node seeds, each distinct prompt prefilled once, prefixes cached across calls) trees
    searched in lockstep, one at a time, and again on a warm prefix cache are the same."""
    from dlcot.engines.hf import HFEngine

    cfg = _cfg(tmp_path, "mcts.node_max_tokens=4", "mcts.stop.max_rollouts=2", "mcts.max_depth=2")
    problems = synthetic_problems(cfg.data, cfg.seed)[:2]
    engine = HFEngine(str(tiny_qwen_dir), batch_size=16)
    with AnswerChecker() as checker:
        def search(batch):
            return [t.to_dict() for t in Searcher([_WholeNodes(engine)], checker, cfg.mcts, seed=0).search(batch)]

        together = search(problems)
        engine.prefixes.clear()
        alone = [tree for p in problems for tree in search([p])]
        warm = search(problems)
    assert together == alone == warm
    assert sum(len(t["nodes"]) for t in together) > 2 * 4 and engine.prefixes.blocks


@pytest.mark.parametrize("mode", ["generated", "generated_with_answer"])
def test_generated_reflections_are_written_by_the_second_model_and_never_see_the_gold(tmp_path, mode):
    cfg = _cfg(tmp_path, f"mcts.reflection={mode}")
    problems = synthetic_problems(cfg.data, cfg.seed)[:2]
    qwen, llama = Oracle(problems), Oracle(problems)
    trees, _, _ = _search(cfg, problems, qwen, llama)
    asked = [p for kind, p in llama.seen if kind == REFLECTION]
    assert asked and not any(kind == REFLECTION for kind, _ in qwen.seen)
    gold = {p.problem: p.gold_answer for p in problems}
    for prompt in asked:
        head = prompt[prompt.rindex("<reflection>"):]
        g = next(v for k, v in gold.items() if k in prompt)
        assert f"\\boxed{{{g}}}" not in prompt
        assert ("and that answer is wrong" in head) == (mode == "generated_with_answer")
        if mode == "generated_with_answer":
            assert f"gave {g}7," in head  # the wrong answer, in the node's own text
    reflections = [n for t in trees for n in t.nodes if n.kind == REFLECTION]
    assert reflections and all(n.tokens > 0 and n.writer == 1 for n in reflections)


def test_probe_every_node_and_random_writers_keep_the_earlier_search(tmp_path):
    cfg = _cfg(tmp_path, "mcts.reward=probe_every_node", "mcts.writer_mode=random", "mcts.stop.max_rollouts=12")
    problems = synthetic_problems(cfg.data, cfg.seed)
    trees, (a, b), _ = _search(cfg, problems, Oracle(problems), Oracle(problems))
    for tree in trees:
        for node in tree.nodes[1:]:
            probes = [k for k in _kids(tree, node) if k.kind == ANSWER]
            if node.kind != ANSWER and node.tokens:  # every written thought node got one answer probe
                assert len(probes) == 1 and probes[0].visits == 1
        assert tree.search["rollouts"] == len(_answers(tree)) == tree.root.visits
        assert tree.search["stop_reason"] in ("budget", "solved")
    assert {n.writer for t in trees for n in t.nodes[1:]} == {0, 1}


@pytest.mark.parametrize("overrides, reason", [(["mcts.transfer.thinking.thinking=0"], "exhausted"),
                                               (["mcts.stop.max_nodes=40"], "budget")])
def test_cut_answers_are_counted_not_kept_and_the_search_still_ends(tmp_path, overrides, reason):
    """Answers cut at the token limit are neither kept nor scored 0: with every answer cut, no rollout ends; the
    search ends when nothing is left to expand, or on the tree-size budget (thinking → thinking never ends)."""
    cfg = _cfg(tmp_path, "mcts.node_max_tokens=9", *overrides)
    problems = synthetic_problems(cfg.data, cfg.seed)[:1]
    oracle = Oracle(problems)
    oracle.engine.respond = lambda p, s: (" \\boxed{1} because " + "x " * 20) if p.rstrip().endswith(
        "The answer is:") else " ok"
    (tree,), _, _ = _search(cfg, problems, oracle)
    assert tree.search["truncated_answers"] > 0 and not _answers(tree) and tree.search["truncated"] == 0
    assert tree.search["stop_reason"] == reason and tree.search["rollouts"] == 0


def _path(*spec) -> TreePath:
    """A path from (node id, tokens) pairs; the last is the answer, correct when its id is even."""
    nodes = [Node(i, None, "thinking", tokens=t) for i, t in spec]
    nodes[-1].kind, nodes[-1].reward = ANSWER, float(spec[-1][0] % 2 == 0)
    return TreePath(nodes)


def test_pairs_share_the_fewest_nodes_never_a_prefix_and_balance_lengths():
    wrong = _path((1, 10), (2, 10), (3, 5))  # thoughts 1, 2, then a wrong answer
    goes_on = _path((1, 10), (2, 10), (4, 30), (6, 5))  # wrong's thoughts are a prefix of this one
    sibling = _path((1, 10), (7, 10), (8, 5))  # shares node 1
    apart = _path((9, 60), (10, 60), (12, 5))  # shares nothing, 5x longer
    apart_short = _path((11, 12), (13, 10), (14, 5))  # shares nothing, about as long
    cands = [wrong, goes_on, sibling, apart, apart_short]
    assert preference_pairs(cands, "max", "any") == [(sibling, wrong)]  # goes_on shares more but is excluded
    assert preference_pairs(cands, "min", "any") == [(apart_short, wrong)]  # fewest shared, then shorter
    assert preference_pairs([wrong, goes_on, sibling, apart], "min", "any") == [(apart, wrong)]
    assert preference_pairs([wrong, goes_on, sibling, apart], "min", "balanced") == [(sibling, wrong)]
    assert preference_pairs([wrong, goes_on], "min", "balanced") == []


@pytest.mark.parametrize("n, q, rank", [(2, 0.5, 1), (4, 0.5, 2), (6, 0.5, 3), (3, 0.5, 2), (10, 0.3, 3),
                                        (5, 0.0, 1), (5, 1.0, 5), (4, 0.25, 1), (4, 0.26, 2)])
def test_sft_path_by_nearest_rank(n, q, rank):
    good = [_path((2 * i + 1, 10 * (n - i)), (2 * i + 2, 1)) for i in range(n)]
    assert balanced(good, q).tokens == 10 * rank + 1


@pytest.mark.parametrize("preset, quantile, rank", [("shortest", 0.0, 1), ("median", 0.5, 3), ("longest", 1.0, 5),
                                                    ("quantile", 0.8, 4)])
def test_sft_length_presets_are_the_papers_short_mid_long_paths(tmp_path, preset, quantile, rank):
    """The named choices select the shortest, lower-median and longest correct path (nearest rank of 5)."""
    extra = ["mcts.length_quantile=0.8"] if preset == "quantile" else []
    m = _cfg(tmp_path, f"mcts.sft_length={preset}", *extra).mcts
    assert sft_quantile(m) == quantile
    good = [_path((2 * i + 1, 10 * (5 - i)), (2 * i + 2, 1)) for i in range(5)]
    assert balanced(good, sft_quantile(m)).tokens == 10 * rank + 1


def test_mcts_command_accounts_for_every_problem_and_resumes_with_cumulative_stats(tmp_path):
    problems = synthetic_problems(compose("mcts", ["data.n_problems=6"]).data, 0)
    src = tmp_path / "problems.jsonl"
    lines = [json.dumps({"id": p.id, "problem": p.problem, "gold_answer": p.gold_answer}) for p in problems]
    src.write_text("\n".join([*lines[:3], "{not json", *lines[3:]]) + "\n")
    unsolvable = {problems[4].id}
    small = ("mcts.stop.give_up_after=40",)

    whole = run(_cfg(tmp_path, f"input={src}", "mcts.batch_problems=2", f"output={tmp_path / 'whole'}", *small),
                engines=[Oracle(problems, unsolvable)])
    stats = json.loads((whole / "stats.json").read_text())
    assert stats["n_input"] == 7 == stats["n_kept"] + stats["n_rejected"]
    assert stats["reject_reasons"] == {"bad_json": 1, "unsolved": 1} and stats["n_trees"] == 6
    reasons = stats["stop_reasons"]
    assert reasons["gave_up"] == 1 and sum(reasons.values()) == 6 and set(reasons) <= {"gave_up", "solved",
                                                                                       "enough_after"}
    assert stats["rollouts"] == sum(json.loads(t)["search"]["rollouts"]
                                    for t in (whole / "trees.jsonl").read_text().splitlines())
    assert stats["n_pairs"] > 0 and stats["node_kinds"]["reflection"] > 0
    assert stats["pair_token_ratio_mean"] > 0 and 0 <= stats["pair_shared_fraction_mean"] < 1
    assert stats["rollouts_per_engine_call"] == stats["rollouts"] / stats["engine_calls"] > 0
    sft = list(read_records(whole / "sft.jsonl", Trace))
    assert len(sft) == 5 and all(not isinstance(t, Reject) and t.gold_answer in t.response for t in sft)
    pairs = list(read_records(whole / "pairs.jsonl", Pair))
    assert pairs and all(p.chosen != p.rejected and not p.chosen.startswith(p.rejected) for p in pairs)

    # the engine dies on the second batch; the rerun searches only what was not written, and every output,
    # stats.json included (rollouts, stop reasons, engine calls), is what the uninterrupted run wrote
    cfg = _cfg(tmp_path, f"input={src}", "mcts.batch_problems=2", f"output={tmp_path / 'resumed'}", *small)
    with pytest.raises(RuntimeError, match="engine died"):
        run(cfg, engines=[Oracle(problems, unsolvable, fail_on={problems[2].id})])
    assert len((tmp_path / "resumed" / "trees.jsonl.partial").read_text().splitlines()) == 2
    again = Oracle(problems, unsolvable)
    run(cfg, engines=[again])
    assert not any(problems[0].problem in prompt for _, prompt in again.seen)
    for name in ("trees.jsonl", "sft.jsonl", "pairs.jsonl", "rejected.jsonl", "stats.json"):
        assert (tmp_path / "resumed" / name).read_bytes() == (whole / name).read_bytes(), name


@pytest.mark.parametrize("override, message", [
    ("+mcts.transfer.thinking.pondering=2", "mcts.transfer.thinking.pondering: unknown node kind"),
    ("mcts.transfer.thinking.double_check=-1", "mcts.transfer.thinking.double_check=-1: a count"),
    ("mcts.transfer.double_check.answer=0", "no path reaches an answer"),
    ("mcts.stop.enough=9", "mcts.stop.enough=9 > mcts.stop.solved=8"),
    ("mcts.stop.enough_after=200", "mcts.stop.enough_after=200 > mcts.stop.give_up_after=128"),
    ("mcts.reward=every", "mcts.reward: 'every' is not one of answer_nodes, probe_every_node"),
    ("mcts.pairs.prefix=mid", "mcts.pairs.prefix: 'mid' is not one of min, max"),
    ("mcts.length_quantile=2", "0 \\(shortest correct path\\)"),
    ("mcts.sft_length=long", "mcts.sft_length: 'long' is not one of quantile, shortest, median, longest"),
    ("mcts.sft_length=longest mcts.length_quantile=0.25", "mcts.sft_length=longest is quantile 1.0, but "
                                                          "mcts.length_quantile=0.25"),
])
def test_bad_mcts_settings_fail_at_composition_naming_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(tmp_path, *override.split())


def test_settings_that_need_a_model_stop_before_any_search(tmp_path):
    with pytest.raises(ConfigError, match="set teacher.model"):
        run(_cfg(tmp_path, "engine=hf", "teacher.name=qwen"))  # a model teacher without teacher.model
    assert not (tmp_path / "mcts").exists()
    with pytest.raises(ConfigError, match="would ignore teacher.model=some/model"):  # not silently the rule writer
        run(_cfg(tmp_path, "engine=hf", "teacher.model=some/model"))
    assert not (tmp_path / "mcts").exists()


def test_a_rerun_counts_afresh_and_from_trees_extracts_again_without_searching(tmp_path):
    cfg = _cfg(tmp_path, f"output={tmp_path / 'a'}")
    problems = synthetic_problems(cfg.data, cfg.seed)
    first = run(cfg, engines=[Oracle(problems, unsolvable={problems[0].id})])
    stats = json.loads((first / "stats.json").read_text())
    run(cfg, engines=[Oracle(problems, unsolvable={problems[0].id})])  # a finished run starts over: same figures
    assert json.loads((first / "stats.json").read_text()) == stats
    assert stats["reject_reasons"] == {"unsolved": 1}
    idle = Oracle(problems)

    other = run(_cfg(tmp_path, f"output={tmp_path / 'b'}", f"mcts.from_trees={first}", "mcts.pairs.prefix=max",
                     "mcts.pairs.length=any"), engines=[idle])
    again = json.loads((other / "stats.json").read_text())
    assert idle.calls == 0 and (other / "trees.jsonl").read_bytes() == (first / "trees.jsonl").read_bytes()
    assert again["engine_calls"] == stats["engine_calls"] and again["n_input"] == stats["n_input"]
    assert again["pairs_rule"]["prefix"] == "max" and again["reject_reasons"] == {"unsolved": 1}
    assert again["pair_shared_nodes_mean"] > stats["pair_shared_nodes_mean"]  # max shares more than min


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_a_node_writer_continues_its_own_assistant_turn_in_its_chat_template(tmp_path, family):
    """The prompt is exactly the writer's chat template of (user: base prompt + problem, assistant: the path so
    far and the new node's head) with the assistant turn left open, for each family's template."""
    from dlcot.data.synthetic import tokenizer_corpus
    from dlcot.engines.base import chat_with_template
    from dlcot.tokens import load_tokenizer
    from dlcot.train.models import template_text
    from dlcot.train.tiny import train_tiny_tokenizer

    if family == "qwen2":
        tok = load_tokenizer("qwen2")
    else:
        tok = train_tiny_tokenizer("llama", tokenizer_corpus(20))
        tok.chat_template = template_text("llama3.jinja")
    cfg = _cfg(tmp_path, "mcts.stop.max_rollouts=2")
    problems = synthetic_problems(cfg.data, cfg.seed)[:1]
    oracle = Oracle(problems)
    oracle.chat = lambda texts, system_prompt=None: chat_with_template(tok, texts, system_prompt, "test")
    (tree,), _, searcher = _search(cfg, problems, oracle)
    m = searcher.cfg
    user = m.base_prompt.replace("{problem}", problems[0].problem)
    checked = 0
    for kind, prompt in oracle.seen:
        head = prompt[prompt.rindex(f"<{m.tags[kind]}>"):]
        turns = ["".join(f"{p.text}\n" for p in tree.path(n)) + head for n in tree.nodes if n.kind != ANSWER]
        turn = max((t for t in turns if prompt.endswith(t)), key=len)  # the parent's path, then the head
        expected = tok.apply_chat_template([{"role": "user", "content": user},
                                            {"role": "assistant", "content": turn}],
                                           continue_final_message=True, tokenize=False)
        assert prompt == expected, (kind, prompt[-200:], expected[-200:])
        checked += 1
    assert checked >= 5
