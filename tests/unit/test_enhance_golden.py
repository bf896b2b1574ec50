"""The offline enhance and segment passes give byte-identical output on a sample of real traces.

Speed work and refactoring of `dlcot/enhance/` must not change a single output byte: this test runs the offline
pass (qwen2 tokenizer, `enhance=keep_first_correct_dedup_all`) over every 20th Sky-T1 trace (25 traces, kept and
rejected ones) and segments those traces and the 8 R1-distill dev traces, then compares a SHA-256 of every output
line with `tests/data/enhance_golden.json`. The digests were written by the code before the speed work of issue 12
(commit 61c23ae). Three segmenter rules added since changed some segmentations on purpose, and those digests were
rewritten: a solution written after `</think>` is conclusion (the R1-distill traces), a problem quoted after
a colon is restatement (three R1-distill traces and math500/200, whose enhance row, a reject, is unchanged), and
"plug a back into (8) to find b" solves on rather than checks (one R1-distill trace). A truncated thought is
rejected before its last statement is verified (its reject detail says so: math500/80, 340, 400; none of them
was kept before either), and so is a text without tags that stops mid-sentence after its final statement
(`truncated`: math500/60 and 320, rejected before as `final_answer_wrong`).
math-verify gets a 10 s CPU budget here, so no verdict depends on machine load.

A change that is *meant* to change outputs updates the file: `python tests/unit/test_enhance_golden.py --write`
(say why in the commit).
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

from dlcot.config import compose
from dlcot.enhance.commands import settings_from
from dlcot.enhance.pipeline import enhance_one, run_stream
from dlcot.enhance.segment import segment

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "enhance_golden.json"
POLICY = "keep_first_correct_dedup_all"
EVERY = 20


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()[:16]


def _sample(shared: Path) -> list[str]:
    lines = (shared / "longcot" / "skyt1_math500.jsonl").read_text().splitlines()
    return [line for line in lines if line.strip()][::EVERY]


def enhance_digests(shared: Path, tmp: Path) -> dict[str, list[str]]:
    """{trace id: [kept | rejected, digest of its output line]} for the sample."""
    src = tmp / "sample.jsonl"
    src.write_text("\n".join(_sample(shared)) + "\n")
    settings = replace(settings_from(compose("enhance", [f"enhance={POLICY}"])), answer_timeout_s=10.0)
    run_stream(enhance_one, src, tmp / "enhanced.jsonl", tmp / "rejected.jsonl", settings, workers=1, progress=False)
    out: dict[str, list[str]] = {}
    for kind, name in (("kept", "enhanced.jsonl"), ("rejected", "rejected.jsonl")):
        for line in (tmp / name).read_text().splitlines(keepends=True):
            out[json.loads(line)["id"]] = [kind, _digest(line)]
    return out


def segment_digests(shared: Path) -> dict[str, str]:
    """{trace id: digest of its segmentation (gold format, as JSON)} for the sample and the R1-distill traces."""
    rows = [json.loads(line) for line in _sample(shared)]
    rows += [json.loads(line) for line in (shared / "longcot" / "r1distill_dev.jsonl").read_text().splitlines()
             if line.strip()]
    return {r["id"]: _digest(json.dumps(segment(r["reasoning"], r["gold_answer"], r["id"]).to_dict()))
            for r in rows}


def test_segmentation_is_unchanged(shared_data):
    assert segment_digests(shared_data) == json.loads(GOLDEN.read_text())["segment"]


def test_enhance_output_is_unchanged(shared_data, tmp_path):
    expected = json.loads(GOLDEN.read_text())["enhance"]
    got = enhance_digests(shared_data, tmp_path)
    assert {k for k, (kind, _) in got.items() if kind == "kept"} and {k for k, (kind, _) in got.items()
                                                                      if kind == "rejected"}  # both paths run
    changed = sorted(k for k in expected if got.get(k) != expected[k])
    assert not changed and set(got) == set(expected), f"output changed for {changed}"


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    shared = Path(__file__).resolve().parents[3] / "shared" / "data"
    with tempfile.TemporaryDirectory() as tmp:
        golden = {"enhance": enhance_digests(shared, Path(tmp)), "segment": segment_digests(shared)}
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
