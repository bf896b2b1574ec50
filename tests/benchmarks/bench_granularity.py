"""Generation at a granularity level (cot.granularity=k, cot.guide=exemplar): mean words of the CoT per level, for
a replay teacher prompted with the level-k exemplar, against the released reference of that level.

The replay teacher answers each prompt with the released CoT of the *level its exemplar comes from* for the
question asked (it recognises the exemplar text; with no recognisable exemplar it answers at level 3, "its own"
style). So it measures the wiring, not a model: the exemplar of the right level reaches the prompt, the answer is
kept whole, and words per level are counted as for the release (ratio 1.00 when all is right). With
`cot.guide=instruction` the same teacher sees only our sentences and stays at its own level, which is what an
uncalibrated prompt risks. A real teacher (engine=openai / vllm) is what this prompt is for; not run here.
Run: .venv/bin/python tests/benchmarks/bench_granularity.py
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFO = ROOT.parent / "shared" / "data" / "keyfactors" / "dataset_info.json"
N_PROBLEMS = 60


def main() -> int:
    if not INFO.is_file():
        print(f"bench_granularity: skipped, {INFO} not found (needs ../shared/data)")
        return 0
    from omegaconf import OmegaConf

    from dlcot.config import compose
    from dlcot.data.exemplars import _solved, exemplar_prompt, uses_exemplar
    from dlcot.data.llamafactory import heldout_problems, problem_key
    from dlcot.engines.scripted import ScriptedEngine

    data = compose("train", ["data=kf_svamp", f"data.dataset_info={INFO}"]).data
    problems = heldout_problems(data, N_PROBLEMS)[0]  # questions no exemplar can be (held out of every file)
    released = {k: dict((problem_key(p), cot) for p, cot in _solved(str(INFO), f"SVAMP_ChatGPT_level{k}"))
                for k in range(1, 7)}
    level_of = {cot: k for k, rows in released.items() for cot in rows.values()}

    def teacher(prompt: str, sample: int) -> str:
        found = [cot for cot in level_of if cot in prompt]  # the longest: a short CoT may sit inside a longer one
        shown = level_of[max(found, key=len)] if found else 3
        question = problem_key(prompt.rsplit("Question:", 1)[-1].removesuffix("Answer:"))
        return released[shown].get(question, released[3].get(question, ""))

    engine = ScriptedEngine(teacher, tokenizer_name="qwen2")
    words = lambda texts: sum(len(t.split()) for t in texts) / len(texts)  # noqa: E731
    print(f"mean words of the CoT per level, {len(problems)} held-out SVAMP problems, GPT-4o release as reference")
    print("level | released | exemplar guide | ratio | instruction guide")
    worst = 0.0
    for k in range(1, 7):
        cot = compose("generate", [f"cot.granularity={k}", f"cot.exemplar_info={INFO}"]).cot
        assert uses_exemplar(cot)
        prompts = [exemplar_prompt(cot, p.problem, lambda q: q) for p in problems]
        shown = [c[0].text for c in engine.generate(prompts)]
        said = OmegaConf.merge(cot, {"guide": "instruction"})
        plain = [c[0].text for c in engine.generate([f"{said.granularity_instructions[k]}\n\nQuestion: {p.problem}"
                                                     "\nAnswer:" for p in problems])]
        ref = words([released[k][problem_key(p.problem)] for p in problems])
        ratio = words(shown) / ref
        worst = max(worst, abs(ratio - 1))
        print(f"{k} | {ref:.1f} | {words(shown):.1f} | {ratio:.2f} | {words(plain):.1f}")
    print(f"max |ratio - 1| = {worst:.3f} (target 0: the exemplar's level reaches the teacher)")
    return 0 if worst < 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
