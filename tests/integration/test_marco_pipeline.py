"""Marco-o1 v2 on CPU, stage to stage: `dlcot mcts` (scripted node writer) → SFT of a tiny student on the
length-balanced paths → fine-grained DPO from that SFT model on the prefix-sharing pairs."""
from __future__ import annotations

import json
import math

from mcts_fixtures import Oracle

import dlcot.train
from dlcot.config import compose
from dlcot.data.sources import synthetic_problems
from dlcot.mcts.commands import run as mcts


def test_trees_feed_sft_then_dpo_from_the_sft_model(tmp_path):
    runs = f"runs_dir={tmp_path / 'runs'}"
    cfg = compose("mcts", ["engine=scripted", "data.n_problems=8", "mcts.iterations=6", "mcts.max_depth=4",
                           f"output={tmp_path / 'trees'}", runs])
    trees = mcts(cfg, engines=[Oracle(synthetic_problems(cfg.data, cfg.seed))])
    mcts_stats = json.loads((trees / "stats.json").read_text())

    sft = dlcot.train.run(compose("train", ["train=sft_cpu_tiny", f"train.data={trees / 'sft.jsonl'}", runs,
                                            f"output={tmp_path / 'sft'}", "train.max_steps=4"]))
    sft_stats = json.loads((sft / "train_stats.json").read_text())
    assert sft_stats["n_kept"] == mcts_stats["n_sft"] == 8

    dpo = dlcot.train.run(compose("train", ["train=dpo_cpu_tiny", f"student.model={sft}", runs,
                                            f"train.data={trees / 'pairs.jsonl'}", f"output={tmp_path / 'dpo'}",
                                            "train.max_steps=4", "train.sft_alpha=1"]))
    stats = json.loads((dpo / "train_stats.json").read_text())
    assert stats["stage"] == "dpo" and stats["model_path"] == str(sft)
    assert stats["n_input"] == mcts_stats["n_pairs"] == stats["n_kept"] + stats["n_rejected"]
    # MCTS pairs part after shared thoughts: masking moves them into the prompt
    assert stats["n_kept"] > 0 and stats["shared_prefix_tokens"] > 0
    assert all(math.isfinite(loss) for _, loss in stats["loss"]["curve"])
    # step 1: policy == reference == the SFT model, so the loss is log 2 + the chosen NLL under the SFT model
    assert stats["loss"]["first"] > math.log(2) and stats["preference"]["rewards/margins"]["first"] == 0.0
