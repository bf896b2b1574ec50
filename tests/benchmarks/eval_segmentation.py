"""Quality of the offline DLCoT segmenter and of the redundancy measure (issue 3 "Quality"; figures in README).

1. Segmentation on both gold sets (../shared/data/gold/segments_dev.jsonl, 10 real Sky-T1 traces;
   segments_dev2.jsonl, 8 real R1-distill traces) and on synthetic-teacher traces (truth known by
   construction): char-level kind agreement, approach-start F1 (±1 non-blank line), first answer within ±1
   line, approach-count exact match, outcome accuracy; next to two trivial segmenters (everything one
   approach; first paragraph restatement + one approach).
2. Redundancy measure: hand-labelled pairs of gold dev spans (same method or not, from the annotators' notes;
   PAIRS below) and synthetic approach pairs (same method name in the truth's note), scored by ROC AUC, best F1
   (and its threshold) and F1 at the configured threshold, for each candidate measure.
Run: .venv/bin/python tests/benchmarks/eval_segmentation.py
"""
from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path

from dlcot.answers import AnswerChecker
from dlcot.data.synthetic import synthetic_traces
from dlcot.enhance.cluster import bigrams, jaccard, math_tokens
from dlcot.enhance.label import final_answer_of, label
from dlcot.enhance.segment import segment
from dlcot.records import Segment, Segmentation
from dlcot.schema import EnhanceConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers beside this script
from segmentation_metrics import score  # noqa: E402
from similarity import minhash, minhash_similarity, overlap, tfidf_cosine  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
N_SYNTHETIC = 300

# Same-method pairs among the approach/verification spans of each gold trace (segment indices), read off the
# annotators' notes ("recheck with same method", "re-traces the composition", "returns to cross-product idea",
# "re-checks each step", "recaps count", ...). Every other pair of spans in the trace is a different-method
# pair, except the ambiguous ones in UNSURE, which are left out.
PAIRS = {"math500/290": [(2, 3)], "math500/367": [(2, 3), (2, 4), (3, 4)], "math500/266": [(2, 4), (2, 6), (4, 6)],
         "math500/239": [(2, 5), (5, 6)], "math500/416": [(3, 4), (4, 5)], "math500/280": [(1, 2)]}
UNSURE = {"math500/367": [(2, 5), (3, 5), (4, 5)], "math500/416": [(3, 5)]}


def trivial(text: str, gid: str, restatement: bool) -> Segmentation:
    cut = text.find("\n\n") + 2 if restatement and "\n\n" in text else 0
    segs = ([Segment("restatement", 0, cut)] if cut else []) + [Segment("approach", cut, len(text), 1, None,
                                                                         "incomplete")]
    return Segmentation(gid, len(text), None, segs)


def print_quality(name: str, rep) -> None:
    s = rep.summary()
    print(f"  {name:<34} kind {s['kind_agreement']:.3f} | start F1 {s['approach_start_f1']:.3f} "
          f"(P {s['approach_start_precision']:.2f} R {s['approach_start_recall']:.2f}) | first answer "
          f"{s['first_answer_within_1_line']:.2f} | count exact {s['approach_count_exact']:.2f} | outcome "
          f"{s['outcome_accuracy']:.3f}")


GOLD_SETS = (("gold dev", "segments_dev.jsonl", "skyt1_math500.jsonl", "real Sky-T1 traces"),
             ("gold dev2", "segments_dev2.jsonl", "r1distill_dev.jsonl", "real R1-distill traces"))


def gold_quality(checker: AnswerChecker, name: str, gold_file: str, traces_file: str, what: str) -> None:
    gold_path = SHARED / "gold" / gold_file
    if not gold_path.is_file():
        print(f"{name} set: skipped ({gold_path} not found)")
        return
    traces = {}
    with (SHARED / "longcot" / traces_file).open() as fh:
        for line in fh:
            row = json.loads(line)
            traces[row["id"]] = row
    ours, t1, t2 = [], [], []
    with gold_path.open() as fh:
        for line in fh:
            gold = Segmentation.from_dict(json.loads(line))
            row = traces[gold.id]
            text = row["reasoning"]
            pred = label(segment(text, row["gold_answer"], gold.id), row["gold_answer"], final_answer_of(text),
                         checker).segmentation
            ours.append((text, pred, gold))
            t1.append((text, trivial(text, gold.id, False), gold))
            t2.append((text, trivial(text, gold.id, True), gold))
    print(f"{name} set ({len(ours)} {what}; targets: kind >= 0.80, start F1 >= 0.70, first answer >= 0.80, "
          "outcome >= 0.85)")
    print_quality("offline segmenter", score(ours))
    print_quality("trivial: one approach", score(t1))
    print_quality("trivial: restatement + one approach", score(t2))


def segmentation_quality(checker: AnswerChecker) -> None:
    for gold_set in GOLD_SETS:
        gold_quality(checker, *gold_set)
    rows = []
    for t in synthetic_traces(N_SYNTHETIC, seed=0):
        pred = label(segment(t.reasoning, t.gold_answer, t.id), t.gold_answer, final_answer_of(t.reasoning),
                     checker).segmentation
        rows.append((t.reasoning, pred, Segmentation.from_dict(t.segmentation)))
    print(f"synthetic teacher ({N_SYNTHETIC} traces, seed 0, truth known)")
    print_quality("offline segmenter", score(rows))
    print_quality("trivial: one approach", score([(x, trivial(x, g.id, False), g) for x, _, g in rows]))


def auc(labels: list[bool], scores: list[float]) -> float:
    pos = [s for lab, s in zip(labels, scores, strict=False) if lab]
    neg = [s for lab, s in zip(labels, scores, strict=False) if not lab]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / max(1, len(pos) * len(neg))


def f1_at(labels: list[bool], scores: list[float], t: float) -> float:
    tp = sum(lab and s >= t for lab, s in zip(labels, scores, strict=False))
    fp = sum((not lab) and s >= t for lab, s in zip(labels, scores, strict=False))
    fn = sum(lab and s < t for lab, s in zip(labels, scores, strict=False))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def best_f1(labels: list[bool], scores: list[float]) -> tuple[float, float]:
    return max(((f1_at(labels, scores, t), t) for t in sorted(set(scores))), default=(0.0, 0.0))


def _tfidf(a: str, b: str, ctx: tuple[str, ...]) -> float:
    """TF-IDF cosine with the IDF fitted on all spans of the trace (`ctx`), as a per-trace clusterer would."""
    m = tfidf_cosine(ctx)
    return m[ctx.index(a)][ctx.index(b)]


MEASURES: dict[str, Callable[[str, str, tuple[str, ...]], float]] = {
    "jaccard, math bigrams (used)": lambda a, b, _: jaccard(bigrams(a), bigrams(b)),
    "jaccard, math unigrams": lambda a, b, _: jaccard(frozenset(math_tokens(a)), frozenset(math_tokens(b))),
    "minhash (64) of math bigrams": lambda a, b, _: minhash_similarity(minhash(bigrams(a)),
                                                                         minhash(bigrams(b))),
    "overlap coeff., math bigrams": lambda a, b, _: overlap(bigrams(a), bigrams(b)),
    "tf-idf cosine, all words": _tfidf,
}


def measure_table(name: str, pairs: list[tuple[bool, str, str, tuple[str, ...]]]) -> None:
    labels = [p[0] for p in pairs]
    threshold = EnhanceConfig().cluster_threshold
    print(f"{name}: {len(pairs)} pairs, {sum(labels)} same-method")
    for mname, fn in MEASURES.items():
        scores = [fn(a, b, ctx) for _, a, b, ctx in pairs]
        f1, t = best_f1(labels, scores)
        at = f"F1 at {threshold} {f1_at(labels, scores, threshold):.3f}" if "used" in mname else ""
        print(f"  {mname:<30} AUC {auc(labels, scores):.3f} | best F1 {f1:.3f} at {t:.3f} {at}")


def redundancy_measures() -> None:
    gold_path = SHARED / "gold" / "segments_dev.jsonl"
    if gold_path.is_file():
        texts = {}
        with (SHARED / "longcot" / "skyt1_math500.jsonl").open() as fh:
            for line in fh:
                row = json.loads(line)
                texts[row["id"]] = row["reasoning"]
        pairs = []
        with gold_path.open() as fh:
            for line in fh:
                g = json.loads(line)
                idx = [i for i, s in enumerate(g["segments"]) if s["kind"] in ("approach", "verification")]
                span = {i: texts[g["id"]][g["segments"][i]["start"]:g["segments"][i]["end"]] for i in idx}
                ctx = tuple(span[i] for i in idx)
                for a, b in itertools.combinations(idx, 2):
                    if (a, b) not in UNSURE.get(g["id"], []):
                        pairs.append(((a, b) in PAIRS.get(g["id"], []), span[a], span[b], ctx))
        measure_table("redundancy measure on gold dev span pairs", pairs)
    pairs = []
    for t in synthetic_traces(N_SYNTHETIC, seed=0):
        segs = [s for s in t.segmentation["segments"] if s["kind"] == "approach"]
        ctx = tuple(t.reasoning[s["start"]:s["end"]] for s in segs)
        for (i, a), (j, b) in itertools.combinations(enumerate(segs), 2):
            ma, mb = a["note"].split(";")[0], b["note"].split(";")[0]
            pairs.append((ma == mb, ctx[i], ctx[j], ctx))
    measure_table("redundancy measure on synthetic approach pairs (same method= in the truth)", pairs)


def main() -> int:
    with AnswerChecker(workers=2, timeout_s=2) as checker:
        segmentation_quality(checker)
    redundancy_measures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
