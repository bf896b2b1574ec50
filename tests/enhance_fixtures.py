"""Shared inputs of the enhance tests: the hand-built trace every policy test uses (segments, outcomes and
method clusters given by hand; its layout is drawn in test_enhance_simplify.py), the contract every segmentation
meets, and a scripted LLM judge with the right answers for that trace."""
from __future__ import annotations

import json

from dlcot.engines.scripted import ScriptedEngine
from dlcot.enhance.segment import KINDS
from dlcot.records import Segment, Segmentation

PARTS = [
    ("restatement", None, None, None, "So I need to find 2 + 3 * 4. Let me think.\n\n"),
    ("understanding", None, None, None, "First, I need to understand the order of operations here.\n\n"),
    ("approach", 1, "20", "incorrect", "Let me compute left to right: 2 + 3 = 5, then 5 * 4 = 20.\n\n"
                                       "So the answer is 20.\n\n"),
    ("verification", None, None, None, "Wait, let me double-check the order. Multiplication comes first, "
                                       "so 20 is wrong.\n\n"),
    ("approach", 2, "14", "correct", "Let me try a different approach. First 3 * 4 = 12, then 2 + 12 = 14.\n\n"
                                     "So the answer is 14.\n\n"),
    ("verification", None, "14", None, "Let me verify: 3 * 4 = 12 and 2 + 12 = 14. Yes, 14.\n\n"),
    ("approach", 3, "20", "incorrect", "Alternatively, I could group it as (2 + 3) * 4 = 5 * 4 = 20.\n\n"
                                       "So that gives 20.\n\n"),
    ("verification", None, None, None, "But wait, that doesn't match 14. The grouping was wrong.\n\n"),
    ("approach", 4, "14", "correct", "Another way: 3 * 4 = 12, and 2 + 12 = 14.\n\nSo the result is 14.\n\n"),
    ("verification", None, "14", None, "Let me plug it back in: 14 - 2 = 12 and 12 / 4 = 3. Correct.\n\n"),
    ("conclusion", None, None, None, "Therefore, the answer is \\boxed{14}."),
]
CLUSTERS = [None, None, 0, 1, 2, 2, 0, 3, 2, 4, None]


def build() -> tuple[str, list[Segment]]:
    text, segs = "", []
    for kind, approach, answer, outcome, body in PARTS:
        segs.append(Segment(kind, len(text), len(text) + len(body), approach, answer, outcome))
        text += body
    return text, segs


TEXT, SEGS = build()


def check_contract(seg: Segmentation, text: str) -> None:
    """docs/architecture.md §5: contiguous spans covering all of text, valid kinds, approaches numbered 1, 2, ..."""
    assert seg.n_chars == len(text)
    if not text:
        assert seg.segments == []
        return
    assert seg.segments[0].start == 0 and seg.segments[-1].end == len(text)
    for a, b in zip(seg.segments, seg.segments[1:], strict=False):
        assert a.end == b.start and a.end > a.start
    assert all(s.kind in KINDS for s in seg.segments)
    nums = [s.approach for s in seg.segments if s.kind == "approach"]
    assert nums == list(range(1, len(nums) + 1))
    assert all(s.approach is None for s in seg.segments if s.kind != "approach")
    if seg.first_answer_end is not None:
        assert 0 < seg.first_answer_end <= len(text)


SEG_OK = {"segments": [{"kind": k, "starts_with": " ".join(b.split()[:8])} for k, *_, b in PARTS]}
LAB_OK = {"approaches": [{"approach": 1, "label": "incorrect", "errors": ["2 + 3 = 5, then 5 * 4 = 20"]},
                         {"approach": 2, "label": "correct", "errors": []},
                         {"approach": 3, "label": "Incorrect", "errors": []},
                         {"approach": 4, "label": "correct"}]}
CLU_OK = {"clusters": [{"members": [1, 5]}, {"members": [2]}, {"members": [3, 4, 7]}, {"members": [6]},
                       {"members": [8]}]}


class Scripted(ScriptedEngine):
    """A scripted judge whose answers per step are queues (first answer, then the retry); counts batches."""

    def __init__(self, answers: dict[str, list]):
        self.answers = {k: list(v) for k, v in answers.items()}
        self.batches: list[tuple[str, int]] = []
        self.prompts: list[str] = []
        super().__init__(self._respond)

    @staticmethod
    def step_of(prompt: str) -> str:
        return {"You split": "segment", "You grade": "label", "Below are": "cluster"}.get(prompt[:9], "rewrite")

    def _respond(self, prompt: str, sample: int) -> str:
        self.prompts.append(prompt)
        queue = self.answers[self.step_of(prompt)]
        ans = queue.pop(0) if len(queue) > 1 else queue[0]
        return ans if isinstance(ans, str) else json.dumps(ans)

    def generate(self, prompts, **kw):
        self.batches.append((self.step_of(prompts[0]), len(prompts)))
        return super().generate(prompts, **kw)
