"""Key-factors training data: the teacher text as it is (train.target=as_is), base students rendered the way the
paper's LLaMA-Factory setup renders them, released files read straight into SFT examples."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlcot.config import compose
from dlcot.errors import ConfigError
from dlcot.records import Trace
from dlcot.train.data import build_sft_data, conversation, render
from dlcot.train.models import load_student_tokenizer
from tests.llamafactory_fixtures import PROBLEMS, release

ALPACA_SYSTEM = ("Below is an instruction that describes a task. "
                 "Write a response that appropriately completes the request.")
BASE_STUDENTS = ("llama3_2_1b_base", "llama3_2_3b_base", "gemma_2b_base", "bloom_560m", "bloom_1b1", "bloom_1b7",
                 "bloom_3b")


def _cfg(*overrides: str):
    return compose("train", ["student=tiny_llama_base", "train=sft_cpu_tiny", *overrides])


def test_as_is_target_is_the_teacher_text_in_the_alpaca_rendering(tiny_llama_dir):
    cfg = _cfg("train.target=as_is")
    tok = load_student_tokenizer(cfg.student, str(tiny_llama_dir))
    trace = Trace(id="t", problem=PROBLEMS[0], reasoning=" Add 3 and 4. The answer is 7", gold_answer="7")
    msgs = conversation(trace, cfg.train, cfg.student)
    assert msgs[-1]["content"] == "Add 3 and 4. The answer is 7"  # no <think> wrapper, no added answer line
    ids, mask = render(tok, msgs)
    start, end = mask.index(1), len(mask) - mask[::-1].index(1)
    expected = (f"{ALPACA_SYSTEM}\n\n### Instruction:\n{PROBLEMS[0]}\n\n### Response:\n"
                "Add 3 and 4. The answer is 7<|eot_id|>\n\n")
    assert tok.decode(ids) == expected  # LLaMA-Factory's `alpaca` template, byte for byte
    assert tok.decode(ids[start:end]) == "Add 3 and 4. The answer is 7<|eot_id|>"  # the loss: answer + eos only
    prompt = tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
    assert expected.startswith(prompt) and prompt.endswith("### Response:\n")  # what eval prompts the student with


def test_think_target_still_wraps_and_unknown_target_is_a_config_error(tmp_path):
    cfg = _cfg()
    trace = Trace(id="t", problem="p", reasoning="r", gold_answer="7", response="The answer is 7")
    assert conversation(trace, cfg.train, cfg.student)[-1]["content"] == "<think>\nr\n</think>\n\nThe answer is 7"
    as_is = _cfg("train.target=as_is")
    assert conversation(trace, as_is.train, as_is.student)[-1]["content"] == "r\n\nThe answer is 7"
    with pytest.raises(ConfigError, match="train.target: 'plain' is not one of think, as_is"):
        build_sft_data(_cfg("train.target=plain", f"train.data={tmp_path / 'x.jsonl'}"), None)


def test_released_entry_becomes_sft_examples_without_conversion(tmp_path, tiny_llama_dir):
    info = release(tmp_path)
    cfg = _cfg("data=kf_svamp", f"data.dataset_info={info}", "data.heldout=2", "teacher=gpt4o", "cot.granularity=1",
               "train.target=as_is")
    data = build_sft_data(cfg, load_student_tokenizer(cfg.student, str(tiny_llama_dir)))
    assert data.stats["n_input"] == 6 and data.stats["n_kept"] == 4 and data.stats["reject_reasons"] == {"heldout": 2}
    assert data.stats["source"]["entry"] == "SVAMP_ChatGPT_level1" and data.stats["target"] == "as_is"
    assert data.stats["source"]["n_answer_mismatch"] == 0
    rows = {r["instruction"]: r["output"] for r in json.loads((tmp_path / "l1.json").read_text())}
    for conv in data.messages:
        assert conv[-1]["content"] == rows[conv[0]["content"]].strip()


def test_a_json_array_file_as_train_data_takes_gold_from_the_answer_statement(tmp_path, tiny_llama_dir):
    release(tmp_path)
    cfg = _cfg(f"train.data={tmp_path / 'l2.json'}", "train.target=as_is")
    data = build_sft_data(cfg, load_student_tokenizer(cfg.student, str(tiny_llama_dir)))
    assert data.stats["n_kept"] == 6 and data.ids[0] == "l2/0" and data.stats["source"]["n_answer_mismatch"] == 0
    assert [m[0]["content"] for m in data.messages] == PROBLEMS


# LLaMA-Factory's renderings of one (question, answer) turn by the templates the paper names (llama3, gemma, alpaca)
LLAMA_FACTORY = {
    "llama3_factory.jinja": "{bos}<|start_header_id|>user<|end_header_id|>\n\n{q}<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n{a}<|eot_id|>",
    "gemma2.jinja": "{bos}<start_of_turn>user\n{q}<end_of_turn>\n<start_of_turn>model\n{a}<end_of_turn>\n",
    "alpaca.jinja": ALPACA_SYSTEM + "\n\n### Instruction:\n{q}\n\n### Response:\n{a}{eos}\n\n",
}


def test_base_students_render_as_llama_factory_and_train_up_to_their_eos(tiny_llama_dir, tmp_path):
    """Each base student's template renders a turn as the paper's LLaMA-Factory template does, and the trained span
    ends on the eos its config names (Llama <|eot_id|>, Gemma <end_of_turn>: LLaMA-Factory's replaced eos; BLOOM
    </s>). The tiny Llama tokenizer stands in for the real ones (no Hub here), given the students' eos tokens."""
    from transformers import AutoTokenizer

    from dlcot.train.data import check_turn_end

    cfgs = {s: compose("train", [f"student={s}", "train.target=as_is"]) for s in BASE_STUDENTS}
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    tok.add_special_tokens({"additional_special_tokens": sorted({t for c in cfgs.values() for t in (
        c.student.eos_token, c.student.pad_token)})})
    tok.save_pretrained(tmp_path)
    trace = Trace(id="t", problem=PROBLEMS[1], reasoning="10 + 5 = 15. The answer is 15", gold_answer="15")
    for student, cfg in cfgs.items():
        assert not cfg.student.model.endswith(("-Instruct", "-it")), "the paper's students are base models"
        tok = load_student_tokenizer(cfg.student, str(tmp_path))
        msgs = conversation(trace, cfg.train, cfg.student)
        expected = LLAMA_FACTORY[cfg.student.chat_template].format(bos=tok.bos_token, eos=tok.eos_token,
                                                                   q=PROBLEMS[1], a=trace.reasoning)
        assert tok.apply_chat_template(msgs, tokenize=False) == expected, student
        ids, mask = render(tok, msgs)
        check_turn_end(ids, mask, tok, student)  # raises unless the last trained token is the student's eos


def test_paper_training_setup_is_the_recipe_default():
    cfg = compose("train", ["recipe=key_factors/svamp"])
    t = cfg.train
    assert (t.learning_rate, t.epochs, t.lr_scheduler_type, t.warmup_ratio) == (5e-5, 3, "cosine", 0.0)
    assert (t.max_length, t.length_policy, t.optim) == (4096, "truncate", "adamw_torch")
    assert t.per_device_batch_size * t.gradient_accumulation_steps * 8 == 64  # launch/zero3.yaml: 8 processes
    assert (cfg.seed, t.target, t.lora.enabled, cfg.engine.temperature, cfg.eval.n) == (100, "as_is", False, 0.0, 1)
    assert cfg.stages[-1].overrides[-1] == "benchmark=kf_svamp_heldout"
    assert Path(cfg.stages[0].launch).name == "zero3.yaml"


def test_teacher_errors_are_counted_in_train_stats(tmp_path, tiny_llama_dir):
    info = release(tmp_path)
    cfg = _cfg("data=kf_svamp", f"data.dataset_info={info}", "data.heldout=0", "teacher=gpt4o", "cot.granularity=2",
               "train.target=as_is")
    data = build_sft_data(cfg, load_student_tokenizer(cfg.student, str(tiny_llama_dir)))
    assert data.stats["n_kept"] == 6 and data.stats["source"]["n_answer_mismatch"] == 1  # "The answer is 99" vs 15
