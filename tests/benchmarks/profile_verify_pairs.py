"""Where the enhance pass's math-verify CPU goes: every pair the offline enhance of the 500 Sky-T1 traces sends to
its verifier pool, timed one by one (issue 12).

Runs the real pass (`enhance=keep_first_correct_dedup_all`, in-process `run_stream`) and records the distinct
(gold, candidate) pairs that reach `AnswerChecker._run` (after the cache and `_quick`), then times each in this
process as the pool would (`_verify_worker`, the configured CPU budget, gold parsed once) and prints the total
and the 20 most expensive pairs. It also shows why an equation chain (`So, a = b = 1`) cannot be cut to its last
right-hand side before the exact path: every candidate with `=` whose math-verify verdict changes when so cut.
Run: .venv/bin/python tests/benchmarks/profile_verify_pairs.py
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from dlcot import answers

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "longcot" / "skyt1_math500.jsonl"


def sent_pairs(log: Path) -> tuple[list[tuple[str, str]], float]:
    """(distinct pairs the enhance workers sent to math-verify, the CPU budget per side), from a real run."""
    from dlcot.config import compose
    from dlcot.enhance.commands import settings_from
    from dlcot.enhance.pipeline import enhance_one, run_stream

    run = answers.AnswerChecker._run

    def recording(self: answers.AnswerChecker, keys: list[tuple[str, str]]) -> dict:
        with log.open("a") as fh:  # forked enhance workers append whole lines
            fh.writelines(json.dumps(k) + "\n" for k in keys)
        return run(self, keys)

    answers.AnswerChecker._run = recording
    cfg = compose("enhance", ["enhance=keep_first_correct_dedup_all"])
    settings = settings_from(cfg)
    run_stream(enhance_one, DATA, log.parent / "enhanced.jsonl", log.parent / "rejected.jsonl", settings,
               workers=cfg.enhance.workers, progress=False)
    answers.AnswerChecker._run = run
    return sorted({tuple(json.loads(line)) for line in log.open()}), settings.answer_timeout_s


def main() -> int:
    if not DATA.is_file():
        print(f"profile_verify_pairs: skipped, {DATA} not found (needs ../shared/data)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        keys, budget = sent_pairs(Path(tmp) / "pairs.jsonl")
    answers._warm_worker()
    rows = []
    for gold, pred in keys:
        new_gold = gold not in answers._GOLD
        start = time.process_time()
        verdict = answers._verify_worker(gold, pred, budget)
        rows.append((time.process_time() - start, new_gold, gold, pred, verdict[1]))
    rows.sort(reverse=True)
    cpu = sorted(r[0] for r in rows)
    print(f"{len(rows)} distinct pairs sent to math-verify ({len({r[3] for r in rows})} distinct candidates, "
          f"{len({r[2] for r in rows})} distinct golds), CPU budget {budget} s a side: total {sum(cpu):.2f} s, "
          f"median {1000 * cpu[len(cpu) // 2]:.0f} ms, top 20 {sum(cpu[-20:]):.2f} s")
    for t, new_gold, gold, pred, reason in rows[:20]:
        print(f"  {1000 * t:5.0f} ms {reason:9} {'(+gold parse) ' if new_gold else ''}{gold[:24]!r} vs {pred[:70]!r}")
    chains = [(g, p) for g, p in keys if "=" in p]
    changed = [(g, p, full, cut) for g, p in chains if (full := answers._verify_worker(g, p, 2.0))
               != (cut := answers._verify_worker(g, p.rsplit("=", 1)[1].strip(), 2.0))]
    print(f"candidates with '=': {len(chains)}; verdict changes when cut to the last right-hand side: {len(changed)}")
    for g, p, full, cut in changed:
        print(f"  {g!r} vs {p[:60]!r}: {full[1]} whole, {cut[1]} cut")
    return 0


if __name__ == "__main__":
    sys.exit(main())
