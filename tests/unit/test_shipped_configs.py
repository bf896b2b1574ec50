"""Every shipped option on the code path that uses it: a wrong brace, key or field in any shipped YAML fails here.

- teachers: each prompt template filled and sent through the generate stage (scripted engine standing in for the
  model), and what each needs to start under vLLM;
- students: each training template rendered and tokenized with the family's real tokenizer (tests/real_models.py);
- benchmarks: each one's rows (where its file is here) read and turned into prompts;
- recipes: each stage composed with its overrides, its train configs built into TRL's SFTConfig / DPOConfig;
- train options: each built into SFTConfig / DPOConfig.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from real_models import family_tokenizer_dir

from dlcot.config import CONF_DIR, compose, list_options
from dlcot.errors import ConfigError
from dlcot.prompts import fill

TEACHERS = [t for t in list_options("teacher") if t != "synthetic"]  # synthetic: no prompt, its own generator
REAL_STUDENTS = [s for s in list_options("student") if not s.startswith("tiny_")]  # tiny: test_tiny_models.py
THOUGHT = "<think>\nTwo and two make four.\n</think>\n\nThe answer is $\\boxed{4}$."


# ------------------------------------------------------------------------------------------------ templates
def test_fill_keeps_latex_braces_reads_doubled_ones_and_names_unknown_fields():
    assert fill("{problem}\n\nPut it within \\boxed{}.", "k", problem="1+1?") == "1+1?\n\nPut it within \\boxed{}."
    assert fill("{problem} \\boxed{{}}", "k", problem="x") == "x \\boxed{}"  # str.format spelling still works
    assert fill("{problem}", "k", problem="a {problem} b {}") == "a {problem} b {}"  # values are not re-read
    with pytest.raises(ConfigError, match=r"teacher.prompt_template=.*\{problme\} is not a field.*\{problem\}"):
        fill("{problme} \\boxed{}", "teacher.prompt_template", problem="x")


@pytest.mark.parametrize("name", TEACHERS)
def test_teacher_prompt_reaches_the_engine(name, tmp_path, monkeypatch):
    """`dlcot generate teacher=NAME`: the template is filled with the problem, `\\boxed{}` arrives literally."""
    import dlcot.engines as engines
    from dlcot.commands import run_command
    from dlcot.engines.scripted import ScriptedEngine

    seen: list[str] = []

    def respond(prompt: str, sample: int) -> str:
        seen.append(prompt)
        return "<think>2 + 2 = 4</think>The answer is \\boxed{4}."

    monkeypatch.setattr(engines, "make_engine", lambda *a, **k: ScriptedEngine(respond))
    probs = tmp_path / "p.jsonl"
    probs.write_text(json.dumps({"id": "q1", "problem": "What is 2 + 2?", "answer": "4"}) + "\n")
    out = run_command("generate", [f"teacher={name}", "teacher.model=stand-in", f"input={probs}",
                                   f"output={tmp_path / 'out'}"])
    template = compose("generate", [f"teacher={name}"]).teacher.prompt_template
    assert seen and seen[0].startswith("What is 2 + 2?")
    assert "{problem}" not in seen[0] and seen[0].count("{") == template.count("{") - 1
    if "boxed" in template:
        assert "\\boxed{}" in seen[0]
    (trace,) = [json.loads(x) for x in (out / "traces.jsonl").read_text().splitlines()]
    assert trace["reasoning"] == "2 + 2 = 4" and trace["teacher"] == name


# Hub-named teachers, read from their files at collection (composing each here cost ~5 s per collection; the
# test composes the ones it runs)
HUB_TEACHERS = [t for t in TEACHERS if "/" in (OmegaConf.load(CONF_DIR / "teacher" / f"{t}.yaml").get("model") or "")]


@pytest.mark.parametrize("name", HUB_TEACHERS)
def test_teacher_fits_vllm_context(name):
    """Each open-weights (Hub-named, vLLM-served) teacher names the tensor parallelism and context it needs;
    engine.* settings win. API teachers (gpt-4o, gemini) go through engine=openai."""
    from dlcot.engines import vllm_sizes

    cfg = compose("generate", [f"teacher={name}", "engine=vllm"])
    tp, max_len = vllm_sizes(cfg.engine, cfg.teacher)
    assert tp >= 2 and max_len is not None and max_len >= cfg.teacher.max_new_tokens + 2048
    big = compose("generate", [f"teacher={name}", "engine=vllm", "engine.tensor_parallel_size=8",
                               "engine.max_model_len=4096"])
    assert vllm_sizes(big.engine, big.teacher) == (8, 4096)


# ------------------------------------------------------------------------------------------------- students
@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tokenizers")
    return {f: family_tokenizer_dir(f, tmp) for f in ("qwen", "llama", "gemma", "smollm", "bloom")}


@pytest.mark.parametrize("name", REAL_STUDENTS)
def test_student_template_renders_and_tokenizes(name, family_dirs):
    """Rendered by the training template, tokenized by the family's tokenizer: the trained span is exactly the
    answer plus one end-of-turn token (the eos generation stops on), `<think>` survives decoding, the generation
    prompt is a prefix of the trained text, and a BOS the template writes is the only one."""
    from dlcot.train.models import load_student_tokenizer

    student = compose("train", [f"student={name}"]).student
    tok = load_student_tokenizer(student, str(family_dirs[student.family]))
    chat = [{"role": "system", "content": "Reason, then answer."}, {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": THOUGHT}]
    enc = tok.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    trained = [i for i, m in zip(ids, mask, strict=True) if m]
    eos_id = tok.convert_tokens_to_ids(student.eos_token)
    assert trained[-1] == eos_id == tok.eos_token_id and trained.count(eos_id) == 1
    assert tok.decode(trained[:-1]) == THOUGHT  # <think> ... </think> survive tokenization and decoding
    prompt = tok.apply_chat_template(chat[:-1], tokenize=False, add_generation_prompt=True)
    text = tok.apply_chat_template(chat, tokenize=False)
    assert text.startswith(prompt) and text[len(prompt):].startswith(THOUGHT)
    assert "Reason, then answer." in text  # every family keeps the system prompt (Gemma: in the user turn)
    plain = tok(prompt, add_special_tokens=False)["input_ids"]
    if "bos_token" in tok.chat_template:  # Llama 3, Gemma 2: the template writes the BOS
        assert plain.count(tok.bos_token_id) == 1 and plain[0] == tok.bos_token_id
    assert tok.pad_token_id is not None


def test_llama3_template_is_the_3_1_layout(family_dirs):
    """Llama 3.1/3.2 were tuned with a system header carrying the knowledge cutoff and a date (Meta's template)."""
    from dlcot.train.models import load_student_tokenizer

    tok = load_student_tokenizer(compose("train", ["student=llama3_2_1b"]).student, str(family_dirs["llama"]))
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                    "December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>"
                    "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def test_gemma2_merges_a_system_prompt_into_the_first_user_turn(family_dirs):
    from dlcot.train.models import load_student_tokenizer

    tok = load_student_tokenizer(compose("train", ["student=gemma2_2b"]).student, str(family_dirs["gemma"]))
    text = tok.apply_chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                                   tokenize=False, add_generation_prompt=True)
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_student_context_bounds_train_max_length():
    from dlcot.train.models import check_context

    cfg = compose("train", ["student=gemma2_2b", "train.max_length=16384"])
    with pytest.raises(ConfigError, match="train.max_length=16384 exceeds .*gemma2_2b.*8192"):
        check_context(cfg.student, cfg.train)
    ok = compose("train", ["student=gemma2_2b", "train.max_length=8192"])
    check_context(ok.student, ok.train)


# ----------------------------------------------------------------------------------------------- benchmarks
@pytest.mark.parametrize("name", list_options("benchmark"))
def test_benchmark_rows_become_prompts(name, shared_data):
    from dlcot.data.benchmarks import format_prompt, load_benchmark, resolve_path

    overrides = [f"benchmark={name}", "data.n_problems=4", "data.heldout=3"]
    if compose("eval", [f"benchmark={name}"]).eval.benchmark.kind == "heldout":
        overrides.append("data=kf_svamp")  # held out of the data group the students trained on (its own README)
    cfg = compose("eval", overrides)
    bench = cfg.eval.benchmark
    if bench.kind not in ("synthetic", "heldout") and resolve_path(bench.path) is None:
        pytest.skip(f"benchmark={name}: its rows come from the Hub ({bench.hub_name}) on GPU clusters")
    probs, rejects, _ = load_benchmark(bench, data=cfg.data, seed=cfg.seed, limit=3)
    assert probs and not rejects
    for p in probs:
        prompt = format_prompt(bench.prompt_template, p)
        assert p.problem in prompt and p.gold_answer and "{problem}" not in prompt


# -------------------------------------------------------------------------------------- recipes, train options
def _build_train(cfg, out: Path):
    from dlcot.train.dpo import dpo_config
    from dlcot.train.models import check_context
    from dlcot.train.sft import sft_config

    check_context(cfg.student, cfg.train)
    args = (sft_config if cfg.train.stage == "sft" else dpo_config)(cfg, out)
    assert args.learning_rate == cfg.train.learning_rate and args.seed == cfg.seed
    assert args.gradient_accumulation_steps == cfg.train.gradient_accumulation_steps
    return args


@pytest.mark.parametrize("name", list_options("train"))
def test_train_option_builds_trl_config(name, tmp_path):
    from trl import DPOConfig, SFTConfig

    cfg = compose("train", [f"train={name}"])
    args = _build_train(cfg, tmp_path)
    assert isinstance(args, SFTConfig if cfg.train.stage == "sft" else DPOConfig)


# Slow here: its search and train stages (each built into TRL's config) and their report rows are checked by
# test_marco_pipeline.py::test_table5_recipe_rows_are_the_papers_rows; its eval stages have table6's shape.
SLOW_RECIPES = {"marco_o1_v2/table5"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_RECIPES else n
                                  for n in list_options("recipes")])
def test_recipe_stages_compose_with_their_overrides(name, tmp_path, monkeypatch):
    """What `dlcot run recipe=NAME` composes for each stage, checked on the code each command starts with."""
    from dlcot.data.benchmarks import format_prompt
    from dlcot.orchestrate.chain import stage_overrides
    from dlcot.records import Problem

    monkeypatch.setenv("DLCOT_SHARED_DATA", str(tmp_path / "shared"))
    cfg = compose("run", [f"recipe={name}"])
    # a recipe without stages is one command's settings (`dlcot train recipe=sft_tiny`)
    stages = cfg.stages or [OmegaConf.create({"name": "only", "command": "train", "overrides": [], "launch": None})]
    dirs: dict[str, Path] = {"run": tmp_path}
    for stage in stages:
        out = tmp_path / stage.name
        sub = compose(stage.command, stage_overrides(cfg, stage, out, dirs))
        if stage.command == "train":
            _build_train(sub, out)
        elif stage.command == "generate" and sub.teacher.model:
            assert "What" in fill(sub.teacher.prompt_template, "teacher.prompt_template", problem="What?")
        elif stage.command == "mcts":  # compose checked the mcts section (MctsConfig.validate)
            assert "What?" in sub.mcts.base_prompt.replace("{problem}", "What?")
        elif stage.command == "eval":
            assert "Q?" in format_prompt(sub.eval.benchmark.prompt_template, Problem("1", "Q?", "1"))
        if stage.launch:
            assert (Path(__file__).resolve().parents[2] / stage.launch).is_file()
        dirs[stage.name] = out


def test_skyt1_data_path_follows_the_shared_data_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("DLCOT_SHARED_DATA", str(tmp_path))
    assert compose("enhance", ["data=skyt1"]).data.path == f"{tmp_path}/longcot/skyt1_math500.jsonl"
