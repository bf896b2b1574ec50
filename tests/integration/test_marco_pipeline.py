"""Marco-o1 v2 on CPU, stage to stage: `dlcot mcts` (the official search, rule-made synthetic node writer) → SFT
of a tiny student on the length-balanced paths → fine-grained DPO from that SFT model on the pairs; and the whole
`recipes/marco_o1_v2/tiny` chain (→ eval → report under the paper's row names) as a slow test."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import pytest

import dlcot.train
from dlcot.config import compose
from dlcot.mcts.commands import run as mcts

SYNTHETIC = ["teacher=synthetic", "data=synthetic", "data.n_problems=6", "data.min_steps=1", "data.max_steps=2",
             "data.max_operand=20"]


def test_trees_feed_sft_then_dpo_from_the_sft_model(tmp_path):
    runs = f"runs_dir={tmp_path / 'runs'}"
    trees = mcts(compose("mcts", [*SYNTHETIC, f"output={tmp_path / 'trees'}", runs]))
    mcts_stats = json.loads((trees / "stats.json").read_text())
    assert mcts_stats["n_sft"] == 6 and mcts_stats["n_pairs"] > 0
    assert set(mcts_stats["stop_reasons"]) <= {"solved", "enough_after"}
    # the pairs the paper asks for: no rejected path is a prefix of its chosen one, lengths balanced on average
    pairs = [json.loads(line) for line in (trees / "pairs.jsonl").read_text().splitlines()]
    assert not any(p["chosen"].startswith(p["rejected"]) for p in pairs)
    assert 0.67 < mcts_stats["pair_token_ratio_mean"] < 1.5

    sft = dlcot.train.run(compose("train", ["train=sft_cpu_tiny", f"train.data={trees / 'sft.jsonl'}", runs,
                                            f"output={tmp_path / 'sft'}", "train.max_steps=2"]))
    sft_stats = json.loads((sft / "train_stats.json").read_text())
    assert sft_stats["n_kept"] == mcts_stats["n_sft"]

    dpo = dlcot.train.run(compose("train", ["train=dpo_cpu_tiny", f"student.model={sft}", runs,
                                            f"train.data={trees / 'pairs.jsonl'}", f"output={tmp_path / 'dpo'}",
                                            "train.max_steps=2", "train.sft_alpha=1", "train.limit=4"]))
    stats = json.loads((dpo / "train_stats.json").read_text())
    assert stats["stage"] == "dpo" and stats["model_path"] == str(sft)
    assert stats["n_kept"] + stats["n_rejected"] == stats["n_input"] == 4
    assert all(math.isfinite(loss) for _, loss in stats["loss"]["curve"])
    # step 1: policy == reference == the SFT model, so the loss is log 2 + the chosen NLL under the SFT model
    assert stats["loss"]["first"] > math.log(2) and stats["preference"]["rewards/margins"]["first"] == 0.0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tiny_recipe_runs_the_chain_and_reports_the_papers_rows(tmp_path):
    out = tmp_path / "chain"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-m", "dlcot.cli", "run", "recipe=marco_o1_v2/tiny", f"output={out}",
                           f"runs_dir={tmp_path / 'runs'}", "train.max_steps=2"], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "report" / "report.csv") as fh:
        rows = {r["run"]: r for r in csv.DictReader(fh)}
    assert rows["eval_sft"]["data"] == "Marco-o1 v2: SFT"
    assert rows["eval_dpo"]["data"] == ("Marco-o1 v2: +DPO +data balance +cDPO (ε=0.1) +joint loss (α=1.0) "
                                        "+masking")
    assert rows["eval_dpo"]["pass_at_k"].startswith("1: ")
    print((out / "report" / "report.md").read_text())


def test_table5_recipe_rows_are_the_papers_rows(tmp_path):
    """Each search and training stage of recipes/marco_o1_v2/table5 composes, its train config builds into TRL's
    SFTConfig / DPOConfig with the row's settings, and `dlcot report` names it by the paper's Table 5 row, read
    from the stage's own config (and its pairs' mcts config): each row adds one part. (Its eval stages have the
    shape of table6's and table7's, composed by test_shipped_configs; the whole recipe there is a slow test.)"""
    from pathlib import Path

    from omegaconf import OmegaConf

    from dlcot.orchestrate.chain import stage_overrides
    from dlcot.orchestrate.report import _data_label
    from dlcot.train.dpo import dpo_config
    from dlcot.train.sft import sft_config

    cfg = compose("run", ["recipe=marco_o1_v2/table5", f"runs_dir={tmp_path}"])
    dirs = {"run": tmp_path}
    labels = {}
    for stage in cfg.stages:
        out = tmp_path / stage.name
        dirs[stage.name] = out
        if stage.command not in ("mcts", "train"):
            continue
        sub = compose(stage.command, stage_overrides(cfg, stage, out, dirs))
        out.mkdir()
        (out / "config.yaml").write_text(OmegaConf.to_yaml(sub))
        if stage.command == "train":
            labels[stage.name] = _data_label({"data": sub.train.data}, out)
            args = (sft_config if sub.train.stage == "sft" else dpo_config)(sub, out)
            assert args.learning_rate == sub.train.learning_rate and args.seed == sub.seed
            assert not stage.launch or (Path(__file__).resolve().parents[2] / stage.launch).is_file()
            if sub.train.stage == "dpo":
                assert (args.beta, args.label_smoothing) == (sub.train.beta, sub.train.label_smoothing)
                assert ("sft" in args.loss_type) == bool(sub.train.sft_alpha)
    assert labels == {
        "sft": "Marco-o1 v2: SFT",
        "dpo": "Marco-o1 v2: +DPO",
        "dpo_balance": "Marco-o1 v2: +DPO +data balance",
        "dpo_cdpo": "Marco-o1 v2: +DPO +data balance +cDPO (ε=0.1)",
        "dpo_joint": "Marco-o1 v2: +DPO +data balance +cDPO (ε=0.1) +joint loss (α=1.0)",
        "dpo_masking": "Marco-o1 v2: +DPO +data balance +cDPO (ε=0.1) +joint loss (α=1.0) +masking"}
