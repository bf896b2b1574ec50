"""Grading agreement: `dlcot.answers` against hand-settled labels of 500 real Sky-T1 outputs on MATH-500.

The labels (tests/data/skyt1_grading_labels.jsonl, ids + verdict + class + reason, no trace text) were built
by grading every `raw_output` of ../shared/data/longcot/skyt1_math500.jsonl with dlcot before #15 and with a plain
math-verify pass on the full output; where the two agree the label is their verdict (`source: agree`), and every
output where either disagreed was read and decided by hand (`source: hand`, with a failure class and reason).
The file's own `is_correct` is not used (about 5% of it is wrong, see the shared data README).

Prints agreement of dlcot's default (convention) grading, of strict grading, and of the plain math-verify
baseline in the same run, per failure class, with every miss listed. Target: convention >= 99.5%.

Those rules were written while reading the same disagreements, so the 500 are a development set. A second, held-out
set was never used to write a rule: tests/data/heldout_grading_labels.jsonl, each output's final answer labelled by
reading it (label + reason per row) before dlcot graded it. It holds the 8 DeepSeek-R1-Distill traces of
../shared/data/longcot/r1distill_dev.jsonl (answer after `</think>` in `reasoning`), the 5 Gemini attempts of
s1k_gemini.jsonl (graded against the gold the s1k adapter takes from `solution`; a row it rejects has no gold and is
listed, not graded), and 117 real outputs in tests/data/heldout_outputs.jsonl.gz from NovaSky-AI/SkyThought's
published evaluation outputs (Apache-2.0; commit and path per row): all of a Sky-T1-math-correct-5K-14B student's
(not the 27B of the development set) on AIME 2024 and AMC 2023; Llama-3.1-8B (base) on the same, its empty
generations left out; and, from the other Sky-T1 students' AIME / AMC files there, every output without a box that
ends on punctuation (the prose-ending candidates: 4 of them from the development set's 27B model, on other problems).
Its agreement is printed beside the figure of its first run, recorded before any rule was changed (HELDOUT_FIRST_RUN).
Run: .venv/bin/python tests/benchmarks/bench_grading.py [--heldout-only]   (about a minute on one core)
"""
from __future__ import annotations

import gzip
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "longcot" / "skyt1_math500.jsonl"
LABELS = ROOT / "tests" / "data" / "skyt1_grading_labels.jsonl"
HELDOUT_LABELS = ROOT / "tests" / "data" / "heldout_grading_labels.jsonl"
HELDOUT_OUTPUTS = ROOT / "tests" / "data" / "heldout_outputs.jsonl.gz"
TARGET = 0.995
# The held-out set's first run, before any rule was changed (2026-11-30, dlcot at b2f1054), all 129 graded rows: the
# one convention miss is s1k_gemini/0 (a proof whose reference boxes only the first of its two inequalities, so the
# adapter's gold is half of the attempt's answer); strict also misses 3 answers stated only in prose. (Its first 106
# rows, before the 23 prose-ending candidates were added: convention and strict 105/106, math-verify 104/106.)
HELDOUT_FIRST_RUN = "convention 128/129 (99.2%), strict 125/129 (96.9%), math-verify 127/129 (98.4%)"
ANSWERLESS = ("truncated", "no_answer")  # label classes of outputs that state no final answer
HELDOUT_FIRST_ANSWERLESS = "65/77"


def plain_math_verify(gold: str, text: str) -> bool:
    """The baseline: math-verify's own extraction on the whole completion (as open-r1 / lighteval call it)."""
    from math_verify import parse, verify

    g = parse("$" + gold + "$") or parse(gold)
    p = parse(text)
    return bool(g) and bool(p) and bool(verify(g, p))


def heldout_items() -> tuple[list[tuple[dict, str, str]], list[str]]:
    """(label, gold, output) of the held-out set, and the rows left ungraded (no gold) with why."""
    from dlcot.answers import normalize_gold
    from dlcot.config import compose
    from dlcot.data.sources import load_records
    from dlcot.records import Reject, Trace

    longcot = DATA.parent
    lines = gzip.decompress(HELDOUT_OUTPUTS.read_bytes()).decode().splitlines()
    outputs = {r["id"]: (r["gold"], r["output"]) for r in map(json.loads, lines)}
    r1 = {r["id"]: (r["gold_answer"], r["reasoning"])
          for r in map(json.loads, (longcot / "r1distill_dev.jsonl").read_text().splitlines())}
    cfg = compose("enhance", ["data=s1k", f"data.path={longcot / 's1k_gemini.jsonl'}", "data.teachers=[gemini]"])
    s1k = {rec.id.split("/")[1]: rec for rec in load_records(cfg.data, Trace)}  # the gold the pipeline would use
    items, skipped = [], []
    for lab in map(json.loads, HELDOUT_LABELS.read_text().splitlines()):
        if lab["id"] in outputs or lab["id"] in r1:
            gold, text = outputs.get(lab["id"]) or r1[lab["id"]]
            items.append((lab, normalize_gold(gold), text))
        elif isinstance(rec := s1k[lab["id"].split("/")[1]], Reject):
            skipped.append(f"  {lab['id']}: not graded, the s1k adapter rejects it ({rec.reason}): {lab['reason']}")
        else:
            items.append((lab, rec.gold_answer, rec.response))
    return items, skipped


def heldout() -> bool:
    """Agreement on the held-out labels; True when every graded row agrees."""
    from dlcot.answers import AnswerChecker

    items, skipped = heldout_items()
    pairs = [(gold, text) for _, gold, text in items]
    with AnswerChecker(workers=1) as checker:
        conv = checker.check_many(pairs, "convention")
        verdicts = {"dlcot convention": [v.correct for v in conv],
                    "dlcot strict": [v.correct for v in checker.check_many(pairs, "strict")]}
    verdicts["math-verify (full output)"] = [plain_math_verify(gold, text) for gold, text in pairs]
    labels = [lab for lab, _, _ in items]
    print(f"\n## held-out set: {len(items)} outputs graded, labelled before dlcot graded them (the held-out figure "
          "is its first run; the answerless rules of 2026-11-30 were then written on what it misread)\n")
    print("| class | n | " + " | ".join(verdicts) + " |")
    print("|---|---:|" + "---:|" * len(verdicts))
    for cls in sorted({lab["class"] for lab in labels}):
        idx = [i for i, lab in enumerate(labels) if lab["class"] == cls]
        cells = [f"{sum(v[i] == labels[i]['correct'] for i in idx)}/{len(idx)}" for v in verdicts.values()]
        print(f"| {cls} | {len(idx)} | " + " | ".join(cells) + " |")
    agree = {name: sum(x == lab["correct"] for x, lab in zip(v, labels, strict=True)) for name, v in verdicts.items()}
    print(f"| **all** | {len(items)} | " + " | ".join(f"**{a}/{len(items)} ({a / len(items):.1%})**"
                                                    for a in agree.values()) + " |")
    print(f"\nfirst run, before any rule change: {HELDOUT_FIRST_RUN}")
    misses = [f"  {lab['id']}: label {lab['correct']}, dlcot {v.correct} (extracted {v.extracted!r}, {v.kind}; gold "
              f"{gold!r}) - {lab['reason']}" for (lab, gold, _), v in zip(items, conv, strict=True)
              if v.correct != lab["correct"]]
    print(f"dlcot convention misses: {len(misses)}\n" + "\n".join(misses))
    # Verdicts agree on an unfinished output whatever value is read from it (it is never the gold here), so how
    # often a value is read from an output labelled as stating none is reported on its own: each is a would-be
    # false positive, and it lowers answerless_rate.
    none = [(lab, v) for lab, v in zip(labels, conv, strict=True) if lab["class"] in ANSWERLESS]
    read = [f"  {lab['id']}: read {v.extracted!r} - {lab['reason']}" for lab, v in none if v.extracted is not None]
    print(f"\nlabelled as stating no answer: {len(none)}; dlcot convention reads none from "
          f"{len(none) - len(read)}/{len(none)} (first run: {HELDOUT_FIRST_ANSWERLESS}); a value read from:\n"
          + "\n".join(read))
    if skipped:
        print("not graded:\n" + "\n".join(skipped))
    return not misses


def main() -> int:
    if not DATA.is_file():
        print(f"bench_grading: skipped, {DATA} not found (needs ../shared/data)")
        return 0
    if "--heldout-only" in sys.argv:
        heldout()
        return 0
    from dlcot.answers import AnswerChecker, normalize_gold

    rows = {r["id"]: r for r in map(json.loads, DATA.read_text().splitlines())}
    labels = [json.loads(line) for line in LABELS.read_text().splitlines()]
    pairs = [(normalize_gold(rows[lab["id"]]["gold_answer"]), rows[lab["id"]]["raw_output"]) for lab in labels]
    graders = {}
    with AnswerChecker(workers=1) as checker:
        start = time.perf_counter()
        conv = checker.check_many(pairs, "convention")
        graders["dlcot convention"] = [v.correct for v in conv], time.perf_counter() - start
        start = time.perf_counter()
        graders["dlcot strict"] = [v.correct for v in checker.check_many(pairs, "strict")], time.perf_counter() - start
    start = time.perf_counter()
    graders["math-verify (full output)"] = ([plain_math_verify(rows[lab["id"]]["gold_answer"], text)
                                             for lab, (_, text) in zip(labels, pairs, strict=True)],
                                            time.perf_counter() - start)
    classes = sorted({lab["class"] for lab in labels})
    print(f"{len(labels)} labelled outputs ({sum(lab['source'] == 'hand' for lab in labels)} decided by hand)\n")
    print("| class | n | " + " | ".join(graders) + " |")
    print("|---|---:|" + "---:|" * len(graders))
    for cls in classes:
        idx = [i for i, lab in enumerate(labels) if lab["class"] == cls]
        cells = [f"{sum(v[i] == labels[i]['correct'] for i in idx)}/{len(idx)}" for v, _ in graders.values()]
        print(f"| {cls} | {len(idx)} | " + " | ".join(cells) + " |")
    agreement = {name: sum(v == lab["correct"] for v, lab in zip(verdicts, labels, strict=True)) / len(labels)
                 for name, (verdicts, _) in graders.items()}
    print(f"| **all** | {len(labels)} | " + " | ".join(f"**{a:.1%}**" for a in agreement.values()) + " |")
    print("\nseconds: " + ", ".join(f"{name} {sec:.1f}" for name, (_, sec) in graders.items()))
    base = agreement["math-verify (full output)"]
    print(f"agreement ratio dlcot convention / math-verify baseline: {agreement['dlcot convention'] / base:.3f}")
    misses = defaultdict(list)
    for lab, verdict, v in zip(labels, graders["dlcot convention"][0], conv, strict=True):
        if verdict != lab["correct"]:
            misses[lab["class"]].append(f"  {lab['id']}: label {lab['correct']}, dlcot {verdict} "
                                        f"(extracted {v.extracted!r}, {v.kind}) - {lab.get('reason', '')}")
    print(f"\ndlcot convention misses: {sum(map(len, misses.values()))}")
    for cls, lines in misses.items():
        print(f"{cls}:\n" + "\n".join(lines))
    ok = agreement["dlcot convention"] >= TARGET
    print(f"\ntarget >= {TARGET:.1%}: {'met' if ok else 'NOT met'} ({agreement['dlcot convention']:.2%})")
    heldout()  # reported, not a pass/fail target: its misses are listed for the next rule change to study
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
