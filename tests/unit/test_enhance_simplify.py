"""Every simplification policy on a hand-built trace whose expected output text is known exactly.

The trace (segments, outcomes and method clusters given by hand, so these tests check the policies, not the
segmenter; test_enhance_segment.py checks that the segmenter finds this same structure):

    R  restatement      U  understanding
    A1 approach 1, incorrect (left to right, cluster 0)      V1 check that finds the slip (cluster 1)
    A2 approach 2, correct   (precedence, cluster 2)  <- end of the trunk
    V2 re-check, same method as A2 (cluster 2: redundant)
    A3 approach 3, incorrect alternative (cluster 0: redundant, and incorrect off-trunk)
    V3 check disputing A3 ("But wait, that doesn't match 14")
    A4 approach 4, correct re-derivation (cluster 2: redundant)
    V4 plug-back check (cluster 4)
    C  conclusion
"""
from __future__ import annotations

import re

import pytest

from dlcot.config import compose
from dlcot.enhance.simplify import Decision, Policy, decide, rebuild, splice
from dlcot.errors import ConfigError
from dlcot.records import Segment
from tests.enhance_fixtures import CLUSTERS, PARTS, SEGS, TEXT

P = [p[4] for p in PARTS]
R, U, A1, V1, A2, V2, A3, V3, A4, V4, C = P


def run(policy: Policy, error_spans=()):
    decisions = decide(SEGS, CLUSTERS, policy, [TEXT[s.start:s.end] for s in SEGS])
    out = splice(TEXT, SEGS, decisions, policy, error_spans)
    assert rebuild(TEXT, out.lineage) == out.text  # the enhanced text is the original's spans, spliced verbatim
    return out, decisions


def policy(name: str, after_trunk: str, dedup: str, dedup_k: int, drop_incorrect: bool, **more) -> Policy:
    return Policy(name=name, after_trunk=after_trunk, dedup=dedup, dedup_k=dedup_k,
                  drop_incorrect_offtrunk=drop_incorrect, **more)


POLICIES = {
    "none": policy("none", "keep", "none", 1, False),
    "keep_first_correct": policy("keep_first_correct", "drop", "none", 1, False),
    "dedup_all": policy("dedup_all", "keep", "all", 1, False),
    "dedup_last_k": policy("dedup_last_k", "keep", "last_k", 1, False),
    "dedup_last_2": policy("dedup_last_k", "keep", "last_k", 2, False),
    "keep_first_correct_dedup_all": policy("keep_first_correct_dedup_all", "drop", "all", 1, False),
    "dlcot": policy("dlcot", "keep", "all", 1, True),
}
EXPECTED = {
    "none": TEXT,
    # the trunk (up to A2, the first correct approach) and the conclusion
    "keep_first_correct": R + U + A1 + V1 + A2 + C,
    # every later member of a cluster goes: V2, A3, A4; V3 now follows A2 and its "But wait," is repaired
    "dedup_all": R + U + A1 + V1 + A2 + "That doesn't match 14. The grouping was wrong.\n\n" + V4 + C,
    # only the last redundant member (A4)
    "dedup_last_k": R + U + A1 + V1 + A2 + V2 + A3 + V3 + V4 + C,
    "dedup_last_2": R + U + A1 + V1 + A2 + V2 + V3.replace("But wait, that", "That") + V4 + C,
    "keep_first_correct_dedup_all": R + U + A1 + V1 + A2 + C,
    # the paper's method: trunk, then no redundant spans, no incorrect off-trunk approach (nor the dispute of
    # it); the distinct plug-back check stays
    "dlcot": R + U + A1 + V1 + A2 + V4 + C,
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_output_is_known_exactly(name):
    out, _ = run(POLICIES[name])
    assert out.text == EXPECTED[name]
    assert out.text.endswith("Therefore, the answer is \\boxed{14}.")


def test_reasons_are_recorded_in_lineage():
    out, decisions = run(POLICIES["dlcot"])
    reasons = {i: d.reason for i, d in enumerate(decisions) if not d.kept}
    assert reasons == {5: "redundant", 6: "incorrect_offtrunk", 7: "disputes_dropped_approach", 8: "redundant"}
    lin = out.lineage["segments"]
    assert [s["kept"] for s in lin] == [True] * 5 + [False] * 4 + [True, True]
    assert out.lineage["policy"] == "dlcot" and out.lineage["repairs"] == []
    assert [k for _, _, k in out.kinds] == ["restatement", "understanding", "approach", "verification", "approach",
                                           "verification", "conclusion"]


def test_protected_spans_are_never_cut():
    # Even if the first correct approach and the conclusion sat in a redundant cluster, they stay.
    clusters = [None, None, 0, 0, 0, 0, 0, 0, 0, 0, None]
    decisions = decide(SEGS, clusters, POLICIES["dedup_all"])
    kept = [i for i, d in enumerate(decisions) if d.kept]
    assert {0, 1, 2, 4, 10} <= set(kept)


def test_connective_repair_logs_what_it_removed_and_can_be_switched_off():
    out, _ = run(POLICIES["dedup_all"])
    assert out.lineage["repairs"] == [{"at": len(R + U + A1 + V1 + A2), "source_offset": SEGS[7].start,
                                       "removed": "But wait, ", "capitalised": True}]
    raw, _ = run(policy("dedup_all", "keep", "all", 1, False, repair_connectives=False))
    assert V3 in raw.text


def test_cut_error_spans_removes_marked_ranges_only_when_asked():
    start = TEXT.index(", then 5 * 4 = 20")
    span = (start, start + len(", then 5 * 4 = 20"))
    off, _ = run(POLICIES["none"], [span])
    assert off.text == TEXT
    on, _ = run(policy("none", "keep", "none", 1, False, cut_error_spans=True), [span])
    assert on.text == TEXT[:span[0]] + TEXT[span[1]:]
    assert on.lineage["error_spans_cut"] == [list(span)]


def test_no_correct_approach_means_no_trunk_cut():
    segs = [s if s.kind != "approach" else Segment(s.kind, s.start, s.end, s.approach, s.answer, "incorrect")
            for s in SEGS]
    decisions = decide(segs, CLUSTERS, POLICIES["keep_first_correct"])
    assert all(d.kept for d in decisions)


@pytest.mark.parametrize("bad,message", [
    ("enhance.after_trunk=sometimes", "enhance.after_trunk: 'sometimes' is not one of keep, drop"),
    ("enhance.dedup=most", "enhance.dedup: 'most' is not one of none, all, last_k"),
    ("enhance.dedup_k=0", "enhance.dedup_k=0: must be >= 1 with enhance.dedup=last_k"),
])
def test_invalid_policy_values_fail_at_composition(bad, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        compose("enhance", ["enhance=dedup_last_k", bad])


def test_the_longest_connective_is_removed_whatever_the_configured_order():
    out, _ = run(policy("dedup_all", "keep", "all", 1, False, connectives=["But", "But wait,"]))
    assert [r["removed"] for r in out.lineage["repairs"]] == ["But wait, "]


@pytest.mark.parametrize("after, expected", [
    ("Wait, x = 3 satisfies it.", "x = 3 satisfies it."),
    ("Wait, ab = 6 here.", "ab = 6 here."),
    ("But f(x) = 2 at 0.", "f(x) = 2 at 0."),
    ("Hmm, sin x is 0 there.", "sin x is 0 there."),
    ("Wait, a_n grows.", "a_n grows."),
    ("Alternatively, we can add them.", "We can add them."),
])
def test_seam_repair_never_changes_the_case_of_maths(after, expected):
    text = "Restated.\n\nCut me.\n\n" + after
    segs = [Segment("restatement", 0, 11), Segment("verification", 11, 20), Segment("conclusion", 20, len(text))]
    policy = POLICIES["dedup_all"]
    out = splice(text, segs, [Decision(True), Decision(False, "redundant"), Decision(True)], policy)
    assert out.text == "Restated.\n\n" + expected
    assert rebuild(text, out.lineage) == out.text


def test_the_final_statement_is_protected_even_when_segmented_as_a_redundant_check():
    # a short trace: its last paragraph (where the final answer is read) came out as a check in A2's cluster
    segs = [*SEGS[:5], Segment("verification", SEGS[5].start, len(TEXT))]
    clusters = [None, None, 0, 1, 2, 2]
    decisions = decide(segs, clusters, POLICIES["dedup_all"], protect_from=TEXT.index("Therefore, the answer"))
    assert decisions[5].kept
    assert not decide(segs, clusters, POLICIES["dedup_all"])[5].kept  # what happened without the protection


def test_offtrunk_needs_error_deletes_only_wrong_approaches_with_errors():
    segs = [*SEGS[:8], Segment("approach", SEGS[8].start, SEGS[8].end, 4, "20", "incorrect"), *SEGS[9:]]
    clusters = [None, None, 0, 1, 2, 3, 4, 5, 6, 7, None]  # nothing redundant
    sode = policy("keep_one_global_delete_all", "keep", "all", 1, True, cut_error_spans=True,
                  offtrunk_needs_error=True)
    err = (SEGS[8].start + 3, SEGS[8].start + 10)  # inside A4 only
    d = decide(segs, clusters, sode, error_spans=[err])
    assert not d[8].kept and d[8].reason == "incorrect_offtrunk"
    assert d[6].kept  # A3: incorrect off the trunk but no errors marked: SODE keeps it
    assert not decide(segs, clusters, POLICIES["dlcot"])[6].kept  # the dlcot policy deletes it anyway


def test_unverified_approaches_are_neither_trunk_nor_cut_as_wrong():
    segs = [s if s.approach != 3 else Segment(s.kind, s.start, s.end, 3, s.answer, "unverified") for s in SEGS]
    clusters = [None, None, 0, 1, 2, 3, 4, 5, 6, 7, None]
    d = decide(segs, clusters, POLICIES["dlcot"])
    assert d[6].kept
