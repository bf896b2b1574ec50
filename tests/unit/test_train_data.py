"""SFT data: think-preserving rendering of real traces, exact assistant loss masks, EOS, length policy, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from train_fixtures import traces, write_traces

from dlcot.config import compose
from dlcot.errors import ConfigError, ModelError, RecordError
from dlcot.records import Trace
from dlcot.train.data import build_sft_data, conversation, render
from dlcot.train.models import load_student_tokenizer


def _cfg(student: str, *overrides: str):
    return compose("train", [f"student={student}", "train=sft_cpu_tiny", *overrides])


def _sky_trace(shared_data: Path) -> Trace:
    """The first closed-thought Sky-T1 trace short enough to render fast (a real teacher output)."""
    with (shared_data / "longcot" / "skyt1_math500.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            if row["thought_closed"] and row["final_solution"] and 2000 < len(row["reasoning"]) < 6000:
                return Trace(id=row["id"], problem=row["problem"], reasoning=row["reasoning"],
                             gold_answer=row["gold_answer"], response=row["final_solution"])
    raise AssertionError("no suitable trace in skyt1_math500.jsonl")


def _tokenizers(tiny_llama_dir: Path):
    """(family, student option, tokenizer) loaded the way `dlcot train` loads them: the real Qwen2 tokenizer
    under the qwen2_5_1_5b student config, and the tiny Llama's under tiny_llama."""
    from dlcot.tokens import qwen2_tokenizer_dir

    qwen = load_student_tokenizer(_cfg("qwen2_5_1_5b").student, str(qwen2_tokenizer_dir()))
    llama = load_student_tokenizer(_cfg("tiny_llama").student, str(tiny_llama_dir))
    return [("qwen", "qwen2_5_1_5b", qwen), ("llama", "tiny_llama", llama)]


@pytest.mark.shared_data
def test_real_trace_survives_template_and_mask_is_exactly_the_assistant_turn(shared_data, tiny_llama_dir):
    trace = _sky_trace(shared_data)
    for family, student, tok in _tokenizers(tiny_llama_dir):
        cfg = _cfg(student)
        msgs = conversation(trace, cfg.train, cfg.student)
        ids, mask = render(tok, msgs)
        start, end = mask.index(1), len(mask) - mask[::-1].index(1)
        assert all(mask[start:end]) and not any(mask[:start]) and not any(mask[end:]), family  # one contiguous span
        eos_id = tok.convert_tokens_to_ids(tok.eos_token)
        assert ids[end - 1] == eos_id, f"{family}: trained span must end with {tok.eos_token}"
        assert eos_id not in ids[start:end - 1], family
        # the masked tokens are exactly the assistant content (+ EOS): nothing of the prompt, nothing after
        content = msgs[-1]["content"]
        assert tok.decode(ids[start:end]) == content.strip() + tok.eos_token, family
        assert content.startswith("<think>\n" + trace.reasoning.strip()[:50])
        assert trace.reasoning.strip() in tok.decode(ids[start:end]), f"{family}: thought lost"
        assert trace.problem in tok.decode(ids[:start]), family
        # nothing but whitespace after the EOS: the sequence ends with the family's EOS
        assert tok.decode(ids[end:]).strip() == "", family


def test_trl_labels_equal_our_assistant_mask(tiny_qwen_dir, tiny_llama_dir, tmp_path):
    """What TRL actually trains on (labels of its prepared dataset) is the mask build_sft_data checked."""
    from trl import SFTConfig, SFTTrainer

    from dlcot.train.models import load_model

    rows = traces(3)
    for student, path in (("tiny_qwen2", tiny_qwen_dir), ("tiny_llama", tiny_llama_dir)):
        cfg = _cfg(student)
        tok = load_student_tokenizer(cfg.student, str(path))
        msgs = [conversation(Trace(**r), cfg.train, cfg.student) for r in rows]
        args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, activation_checkpointing=False,
                         assistant_only_loss=True, max_length=None, report_to=[])
        from datasets import Dataset

        trainer = SFTTrainer(model=load_model(cfg.student, cfg.train, str(path), tok), args=args,
                             train_dataset=Dataset.from_dict({"messages": msgs}), processing_class=tok)
        for conv, ex in zip(msgs, trainer.train_dataset, strict=True):
            ids, mask = render(tok, conv)
            assert ex["input_ids"] == ids
            assert ex["labels"] == [i if m else -100 for i, m in zip(ids, mask, strict=True)]


def test_length_policy_drop_truncate_error(tmp_path, tiny_qwen_dir):
    data = write_traces(tmp_path / "t.jsonl", traces(6))
    tok = load_student_tokenizer(_cfg("tiny_qwen2").student, str(tiny_qwen_dir))
    lengths = [len(render(tok, conversation(Trace(**r), _cfg("tiny_qwen2").train, _cfg("tiny_qwen2").student))[0])
               for r in traces(6)]
    cut = sorted(lengths)[3]  # 2 examples are longer than this (ties aside)
    n_long = sum(n > cut for n in lengths)
    assert n_long > 0
    dropped = build_sft_data(_cfg("tiny_qwen2", f"train.data={data}", f"train.max_length={cut}",
                                  "train.length_policy=drop"), tok)
    assert dropped.stats["dropped_by_length"] == n_long == dropped.stats["n_rejected"]
    assert dropped.stats["n_kept"] + dropped.stats["n_rejected"] == dropped.stats["n_input"] == 6
    truncated = build_sft_data(_cfg("tiny_qwen2", f"train.data={data}", f"train.max_length={cut}",
                                    "train.length_policy=truncate"), tok)
    assert truncated.stats["truncated"] == n_long and truncated.stats["n_kept"] == 6
    assert truncated.stats["tokens_truncated"] == sum(n - cut for n in lengths if n > cut)
    with pytest.raises(RecordError, match="length_policy=error"):
        build_sft_data(_cfg("tiny_qwen2", f"train.data={data}", f"train.max_length={cut}",
                            "train.length_policy=error"), tok)


def test_empty_dataset_after_filtering_and_empty_assistant_are_clear_errors(tmp_path, tiny_qwen_dir):
    tok = load_student_tokenizer(_cfg("tiny_qwen2").student, str(tiny_qwen_dir))
    data = write_traces(tmp_path / "t.jsonl", traces(3))
    with pytest.raises(RecordError, match="no usable SFT examples.*too_long"):
        build_sft_data(_cfg("tiny_qwen2", f"train.data={data}", "train.max_length=8"), tok)
    empty = write_traces(tmp_path / "e.jsonl", [{"id": "x", "problem": "p", "reasoning": "  ", "response": "",
                                                  "gold_answer": ""}])
    with pytest.raises(RecordError, match="empty_assistant"):
        build_sft_data(_cfg("tiny_qwen2", f"train.data={empty}"), tok)
    mixed = write_traces(tmp_path / "m.jsonl", [*traces(2), {"id": "x", "problem": "p", "reasoning": "",
                                                              "response": "", "gold_answer": ""}])
    out = build_sft_data(_cfg("tiny_qwen2", f"train.data={mixed}"), tok)
    assert [r.reason for r in out.rejects] == ["empty_assistant"] and out.stats["n_kept"] == 2


def test_missing_response_policy(tmp_path, tiny_qwen_dir):
    tok = load_student_tokenizer(_cfg("tiny_qwen2").student, str(tiny_qwen_dir))
    rows = [{**r, "response": None} for r in traces(2)]
    data = write_traces(tmp_path / "t.jsonl", [{k: v for k, v in r.items() if v is not None} for r in rows])
    boxed = build_sft_data(_cfg("tiny_qwen2", f"train.data={data}", "train.missing_response=boxed_gold"), tok)
    assert boxed.messages[0][-1]["content"].endswith(f"\\boxed{{{rows[0]['gold_answer']}}}$.")
    with pytest.raises(RecordError, match="no_response"):
        build_sft_data(_cfg("tiny_qwen2", f"train.data={data}"), tok)  # default: an unfinished trace is rejected


def test_tokenizer_without_chat_template_is_a_model_error(tiny_qwen_dir):
    student = OmegaConf.merge(_cfg("tiny_qwen2").student, {"chat_template": None})
    tok_dir = Path(tiny_qwen_dir)
    if (tok_dir / "chat_template.jinja").exists():  # the saved tiny model carries one: copy without it
        import shutil
        import tempfile

        bare = Path(tempfile.mkdtemp())
        for f in tok_dir.iterdir():
            if f.name != "chat_template.jinja":
                shutil.copy(f, bare / f.name)
        cfg = json.loads((bare / "tokenizer_config.json").read_text())
        cfg.pop("chat_template", None)
        (bare / "tokenizer_config.json").write_text(json.dumps(cfg))
        tok_dir = bare
    with pytest.raises(ModelError, match="no chat template"):
        load_student_tokenizer(student, str(tok_dir))


def test_template_without_eos_in_the_trained_span_is_caught(tmp_path, tiny_qwen_dir):
    """A template that leaves <|im_end|> outside {% generation %} trains a student that never stops."""
    from dlcot.train.data import check_turn_end

    tok = load_student_tokenizer(_cfg("tiny_qwen2").student, str(tiny_qwen_dir))
    tok.chat_template = tok.chat_template.replace("{{- message.content + '<|im_end|>' }}",
                                                  "{{- message.content }}").replace(
        "{%- endgeneration %}\n        {{- '\\n' }}", "{%- endgeneration %}\n        {{- '<|im_end|>\\n' }}")
    cfg = _cfg("tiny_qwen2")
    ids, mask = render(tok, conversation(Trace(**traces(1)[0]), cfg.train, cfg.student))
    with pytest.raises(ModelError, match="not the eos token"):
        check_turn_end(ids, mask, tok, "t0")


def test_unknown_student_and_missing_data_are_config_errors():
    with pytest.raises(ConfigError, match="student"):
        compose("train", ["student=no_such_student"])
    from dlcot.commands import run_command

    with pytest.raises(ConfigError, match="train.data"):
        run_command("train", ["student=tiny_qwen2", "train=sft_cpu_tiny", "output=/nonexistent/never"])


def test_enhanced_rows_train_on_the_enhanced_thought(tmp_path, tiny_qwen_dir):
    """Rows of `dlcot enhance`'s enhanced.jsonl carry the simplified thought in `enhanced`; auto picks it."""
    tok = load_student_tokenizer(_cfg("tiny_qwen2").student, str(tiny_qwen_dir))
    rows = traces(2)
    enhanced = [{**rows[0], "enhanced": "Short: 1 + 1 = 2.", "lineage": {}}, rows[1]]
    data = write_traces(tmp_path / "enhanced.jsonl", enhanced)
    auto = build_sft_data(_cfg("tiny_qwen2", f"train.data={data}"), tok)
    assert auto.messages[0][-1]["content"].startswith("<think>\nShort: 1 + 1 = 2.\n</think>\n\n")
    assert rows[1]["reasoning"].strip() in auto.messages[1][-1]["content"]
    assert auto.stats["n_enhanced_thoughts"] == 1
    raw = build_sft_data(_cfg("tiny_qwen2", f"train.data={data}", "train.thought=raw"), tok)
    assert rows[0]["reasoning"].strip() in raw.messages[0][-1]["content"]
    strict = build_sft_data(_cfg("tiny_qwen2", f"train.data={data}", "train.thought=enhanced"), tok)
    assert strict.ids == [rows[0]["id"]] and [r.reason for r in strict.rejects] == ["no_enhanced"]


def test_train_counts_come_from_the_shared_input_counter(tmp_path, tiny_qwen_dir, monkeypatch):
    """read / kept / rejected (by reason) of `train` are what `records.Counted` saw, as in every other stage."""
    from dlcot import records
    from dlcot.train import data as train_data

    counters = []

    class Spy(records.Counted):
        def __init__(self, items):
            super().__init__(items)
            counters.append(self)

    monkeypatch.setattr(train_data, "Counted", Spy)
    good = traces(3)
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([json.dumps(good[0]), "{not json", json.dumps({"id": "x", "problem": "p"}),
                               json.dumps(good[1]), json.dumps({**good[2], "id": good[0]["id"]})]) + "\n")
    tok = load_student_tokenizer(_cfg("tiny_qwen2").student, str(tiny_qwen_dir))
    built = build_sft_data(_cfg("tiny_qwen2", f"train.data={path}"), tok)
    assert [c.n for c in counters] == [5] and built.stats["n_input"] == 5
    assert built.stats["n_kept"] == 2 and built.stats["n_rejected"] == 3
    assert built.stats["reject_reasons"] == {"bad_json": 1, "missing_field": 1, "duplicate_id": 1}


def test_train_accounting_refuses_a_lost_record(tmp_path):
    """n_input = n_kept + n_rejected is checked (`records.check_accounting`), so a lost record is an error."""
    from dlcot.records import Counted, Reject
    from dlcot.train.data import account

    read = Counted(range(4))
    assert list(read) == [0, 1, 2, 3]
    rejects = [Reject("c", "bad_json", "")]
    with pytest.raises(RecordError, match=r"read 4 input records but the outputs hold 2 kept \+ 1 rejected"):
        account(tmp_path / "t.jsonl", "SFT examples", read, 2, rejects, _cfg("tiny_qwen2").train)
    assert account(tmp_path / "t.jsonl", "SFT examples", read, 3, rejects, _cfg("tiny_qwen2").train)["n_input"] == 4
