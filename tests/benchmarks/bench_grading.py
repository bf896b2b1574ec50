"""Grading agreement: `dlcot.answers` against hand-settled labels of 500 real Sky-T1 outputs on MATH-500.

The labels (tests/data/skyt1_grading_labels.jsonl, ids + verdict + class + reason, no trace text) were built
by grading every `raw_output` of ../shared/data/longcot/skyt1_math500.jsonl with dlcot before #15 and with a plain
math-verify pass on the full output; where the two agree the label is their verdict (`source: agree`), and every
output where either disagreed was read and decided by hand (`source: hand`, with a failure class and reason).
The file's own `is_correct` is not used (about 5% of it is wrong, see the shared data README).

Prints agreement of dlcot's default (convention) grading, of strict grading, and of the plain math-verify
baseline in the same run, per failure class, with every miss listed. Target: convention >= 99.5%.
Run: .venv/bin/python tests/benchmarks/bench_grading.py   (about a minute on one core)
"""
from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "longcot" / "skyt1_math500.jsonl"
LABELS = ROOT / "tests" / "data" / "skyt1_grading_labels.jsonl"
TARGET = 0.995


def plain_math_verify(gold: str, text: str) -> bool:
    """The baseline: math-verify's own extraction on the whole completion (as open-r1 / lighteval call it)."""
    from math_verify import parse, verify

    g = parse("$" + gold + "$") or parse(gold)
    p = parse(text)
    return bool(g) and bool(p) and bool(verify(g, p))


def main() -> int:
    if not DATA.is_file():
        print(f"bench_grading: skipped, {DATA} not found (needs ../shared/data)")
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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
