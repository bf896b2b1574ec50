"""`dlcot train train.stage=dpo` (Marco-o1 v2 fine-grained DPO) on tiny students: the rows TRL trains on are the
chat template's tokens, the shared prefix is masked without changing the DPO logit, the objective is
L_DPO + α·L_SFT, every trainable parameter moves, the preference margin grows, resume is exact, bad input stops
before training."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from train_fixtures import ParamWatch, StopAfter, pairs, write_traces

import dlcot.train
from dlcot.config import compose
from dlcot.errors import ConfigError, RecordError
from dlcot.train.data import render
from dlcot.train.models import load_student_tokenizer, resolve_model_path
from dlcot.train.pairs import build_pair_data

STUDENTS = ["tiny_qwen2", "tiny_llama"]


def _cfg(tmp_path: Path, *overrides: str, data: Path | None = None):
    data = data or write_traces(tmp_path / "pairs.jsonl", pairs(8))
    return compose("train", ["train=dpo_cpu_tiny", f"train.data={data}", f"output={tmp_path / 'run'}",
                             f"runs_dir={tmp_path.parent / 'runs'}", *overrides])


def _data(tmp_path: Path, *overrides: str, data: Path | None = None):
    cfg = _cfg(tmp_path, *overrides, data=data)
    tok = load_student_tokenizer(cfg.student, resolve_model_path(cfg.student, cfg.runs_dir))
    return cfg, tok, build_pair_data(cfg, tok)


def _train(tmp_path: Path, name: str, *overrides: str, callbacks=None) -> dict:
    cfg = _cfg(tmp_path, f"output={tmp_path / name}", *overrides)
    out = dlcot.train.run(cfg, callbacks=callbacks)
    return json.loads((out / "train_stats.json").read_text())


@pytest.mark.parametrize("student", STUDENTS)
def test_rows_are_the_templates_tokens_with_the_shared_thoughts_in_the_prompt(tmp_path, student):
    cfg, tok, data = _data(tmp_path, f"student={student}")
    src = pairs(8)
    assert data.stats["n_kept"] == 8 and data.stats["shared_prefix_tokens"] > 0
    for row, rec in zip(data.rows, src, strict=True):
        shared = "\n\n".join(rec["rejected"].split("\n\n")[:-1])
        assert row["prompt"].endswith(f"{cfg.student.think_open}\n{shared}\n\n")
        assert row["chosen"].endswith(tok.eos_token) and row["rejected"].endswith(tok.eos_token)
        assert row["rejected"].startswith("Hmm, I think it comes to")
        for side in ("chosen", "rejected"):
            content = (f"{cfg.student.think_open}\n{rec[side]}\n{cfg.student.think_close}\n\n"
                       f"{rec[side + '_response']}")
            conv = [{"role": "user", "content": rec["problem"]}, {"role": "assistant", "content": content}]
            ids, mask = render(tok, conv)
            end = len(mask) - mask[::-1].index(1)
            # what TRL tokenizes (prompt + completion as text) is the template's conversation up to the EOS
            assert tok(text=row["prompt"] + row[side]).input_ids == ids[:end]
            assert ids[end - 1] == tok.convert_tokens_to_ids(tok.eos_token)

    _, _, unmasked = _data(tmp_path, f"student={student}", "train.prefix_masking=false")
    assert unmasked.stats["shared_prefix_tokens"] == 0
    assert all(r["chosen"].startswith(cfg.student.think_open) for r in unmasked.rows)


def test_masking_the_shared_prefix_leaves_the_dpo_logit_unchanged(tmp_path):
    """The shared thoughts have the same context in both sequences, so their log-probs cancel in
    log π(chosen) − log π(rejected): masking drops only terms that cancel (and the SFT term's share of them)."""
    from dlcot.train.models import load_model

    cfg, tok, masked = _data(tmp_path)
    _, _, plain = _data(tmp_path, "train.prefix_masking=false")
    model = load_model(cfg.student, cfg.train, resolve_model_path(cfg.student, cfg.runs_dir), tok).eval()

    def completion_logp(prompt: str, completion: str) -> float:
        ids = tok(text=prompt + completion, return_tensors="pt").input_ids
        start = len(tok(text=prompt).input_ids)
        with torch.no_grad():
            logps = model(ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
        return float(logps[start - 1:].sum())

    for m, p in zip(masked.rows[:3], plain.rows[:3], strict=True):
        assert len(m["chosen"]) < len(p["chosen"])
        delta_masked = completion_logp(m["prompt"], m["chosen"]) - completion_logp(m["prompt"], m["rejected"])
        delta_plain = completion_logp(p["prompt"], p["chosen"]) - completion_logp(p["prompt"], p["rejected"])
        assert delta_masked == pytest.approx(delta_plain, abs=1e-3)


def test_objective_is_dpo_plus_alpha_times_sft(tmp_path):
    """At step 1 the policy is the reference, so the (c)DPO loss is exactly log 2 for any label smoothing; the
    SFT term adds α times the chosen NLL, linearly in α (ε itself is checked where h ≠ 0, below)."""
    first = {}
    for alpha in (0, 1, 2):
        stats = _train(tmp_path, f"a{alpha}", f"train.sft_alpha={alpha}", "train.label_smoothing=0.2",
                       "train.max_steps=1")
        first[alpha] = stats["loss"]["first"]
        assert stats["stage"] == "dpo"
    assert first[0] == pytest.approx(math.log(2), abs=1e-3)
    nll = first[1] - math.log(2)
    assert nll > 1.0  # a random tiny model's per-token NLL is around log(vocab)
    assert first[2] - math.log(2) == pytest.approx(2 * nll, rel=1e-3)


def test_cdpo_weights_make_the_closed_form_from_trls_sigmoid_and_robust_losses():
    """The combination dpo.py hands TRL, evaluated with TRL 1.16's two formulas, is cDPO for any h."""
    import torch.nn.functional as F

    from dlcot.train.dpo import cdpo_weights

    x = torch.linspace(-6, 6, 25, dtype=torch.float64)  # beta * h
    for eps in (0.0, 0.1, 0.3, 0.45):
        sigmoid = -F.logsigmoid(x)
        robust = (-(1 - eps) * F.logsigmoid(x) + eps * F.logsigmoid(-x)) / (1 - 2 * eps)
        w = cdpo_weights(eps)
        closed = -(1 - eps) * F.logsigmoid(x) - eps * F.logsigmoid(-x)
        assert torch.allclose(w[0] * sigmoid + w[1] * robust, closed, atol=1e-12)


def test_cdpo_logged_loss_is_the_closed_form_of_the_logged_margins(tmp_path):
    """One pair a step, so each step's logged `rewards/margins` is β·h of that pair and the logged loss must be
    −(1−ε)·log σ(βh) − ε·log σ(−βh) at every step where h ≠ 0; ε changes the curve (TRL's plain sigmoid loss
    ignores label_smoothing, which this test catches)."""
    curves = {}
    for eps in (0.0, 0.1, 0.3):
        stats = _train(tmp_path, f"e{eps}", f"train.label_smoothing={eps}", "train.max_steps=3",
                       "train.per_device_batch_size=1", "train.learning_rate=3e-3")
        losses = dict(map(tuple, stats["loss"]["curve"]))
        margins = dict(map(tuple, stats["preference"]["rewards/margins"]["curve"]))
        checked = 0
        for step, m in margins.items():
            closed = -(1 - eps) * math.log(1 / (1 + math.exp(-m))) - eps * math.log(1 / (1 + math.exp(m)))
            assert losses[step] == pytest.approx(closed, rel=1e-4, abs=1e-5), (eps, step, m)
            checked += abs(m) > 0.02
        assert checked >= 2, f"margins too small to tell ε apart: {margins}"
        curves[eps] = [losses[s] for s in sorted(losses)]
    assert curves[0.0][0] == pytest.approx(curves[0.3][0], abs=1e-6)  # step 1: h = 0, log 2 for any ε
    assert all(abs(a - b) > 1e-3 for a, b in zip(curves[0.0][1:], curves[0.3][1:], strict=True))


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("student", STUDENTS)
def test_dpo_moves_every_trainable_parameter(tmp_path, student, lora):
    watch = ParamWatch()
    stats = _train(tmp_path, "run", f"student={student}", f"train.lora.enabled={lora}", "train.max_steps=3",
                   "train.sft_alpha=0.5", callbacks=[watch])
    assert watch.before and watch.unchanged == []
    assert stats["global_step"] == 3 and math.isfinite(stats["loss"]["last"])
    assert stats["lora"] is lora and set(stats["preference"]) >= {"rewards/margins", "rewards/accuracies"}
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert "DPO (beta 0.1" in (tmp_path / "run" / "README.md").read_text()


@pytest.mark.slow  # ~15 s; the objective and cDPO tests check the loss exactly at every step
def test_dpo_learns_the_preference(tmp_path):
    stats = _train(tmp_path, "fit", "train.max_steps=16", "train.learning_rate=3e-3", "train.limit=4",
                   "train.per_device_batch_size=4")
    margins = stats["preference"]["rewards/margins"]
    assert margins["first"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at step 1
    assert margins["last"] > 1.0
    assert stats["preference"]["rewards/accuracies"]["last"] == 1.0
    assert stats["loss"]["last"] < 0.5 * stats["loss"]["first"]


@pytest.mark.slow  # ~11 s; SFT resume and train fault injection stay in the default suite
def test_resume_after_a_kill_gives_the_same_losses(tmp_path):
    whole = _train(tmp_path, "whole", "train.max_steps=4", "train.save_steps=2", "train.sft_alpha=1")
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, "killed", "train.max_steps=4", "train.save_steps=2", "train.sft_alpha=1",
               callbacks=[StopAfter(2)])
    resumed = _train(tmp_path, "killed", "train.max_steps=4", "train.save_steps=2", "train.sft_alpha=1")
    assert [loss for _, loss in resumed["loss"]["curve"]] == pytest.approx(
        [loss for _, loss in whole["loss"]["curve"]], abs=1e-5)


def test_bad_pairs_are_rejected_with_reasons_and_bad_settings_stop_before_training(tmp_path):
    rows = pairs(5)
    rows[1]["rejected"], rows[1]["rejected_response"] = rows[1]["chosen"], rows[1]["chosen_response"]
    del rows[2]["rejected_response"]
    del rows[3]["rejected"]
    data = write_traces(tmp_path / "bad.jsonl", rows)
    _, _, built = _data(tmp_path, data=data)
    reasons = {r.id: (r.reason, r.detail) for r in built.rejects}
    assert built.stats["n_input"] == 5 and built.stats["n_kept"] == 2 and len(reasons) == 3
    assert reasons[rows[1]["id"]][0] == "identical_pair"
    assert reasons[rows[2]["id"]][0] == "rejected_no_response"
    assert reasons[rows[3]["id"]][0] == "missing_field" and f"{data}:4" in reasons[rows[3]["id"]][1]
    assert "train.fields.rejected" in reasons[rows[3]["id"]][1]

    with pytest.raises(RecordError, match="no usable preference pairs"):
        _data(tmp_path, data=write_traces(tmp_path / "none.jsonl", [rows[1], rows[2]]))
    for override, message in [("train.missing_response=boxed_gold", "after its rejected thought"),
                              ("train.label_smoothing=0.5", "lies in \\[0, 0.5\\)"),
                              ("train.packing=true", "packing is for SFT"),
                              ("train.beta=0", "must be > 0"),
                              ("train.stage=ppo", "train.stage: 'ppo' is not one of sft, dpo")]:
        with pytest.raises(ConfigError, match=message):
            dlcot.train.run(_cfg(tmp_path, override))
    assert not (tmp_path / "run").exists()
