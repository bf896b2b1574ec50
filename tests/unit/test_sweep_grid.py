"""`dlcot sweep` grid expansion: Hydra's override grammar, Cartesian product in order, job names, sweep dir."""
from __future__ import annotations

from pathlib import Path

import pytest

from dlcot.errors import ConfigError
from dlcot.orchestrate.sweep import expand, job_name, sweep_dir


def test_grid_is_the_cartesian_product_in_command_line_order():
    fixed, jobs = expand(["recipe=r", "-m", "student=a,b", "train.learning_rate=1e-3,3e-3", "seed=7"])
    assert fixed == ["recipe=r", "seed=7"]
    assert jobs == [["student=a", "train.learning_rate=0.001"], ["student=a", "train.learning_rate=0.003"],
                    ["student=b", "train.learning_rate=0.001"], ["student=b", "train.learning_rate=0.003"]]


def test_range_and_choice_sweeps_and_a_plain_run():
    assert expand(["seed=range(0,3)"])[1] == [["seed=0"], ["seed=1"], ["seed=2"]]
    assert expand(["enhance=choice(none,dlcot)"])[1] == [["enhance=none"], ["enhance=dlcot"]]
    assert expand(["recipe=r", "seed=1"]) == (["recipe=r", "seed=1"], [[]])  # no sweep: one job


def test_unsupported_sweeps_are_clear_errors():
    with pytest.raises(ConfigError, match="cannot parse"):
        expand(["enhance=glob(dl*)"])  # needs Hydra's config loader, which a sweep spec does not have
    with pytest.raises(ConfigError, match="cannot parse"):
        expand(["student=a,,b"])


def test_job_names_are_path_safe_and_the_sweep_dir_is_stable():
    assert job_name(["student=tiny_qwen2", "seed=1"]) == "student-tiny_qwen2__seed-1"
    assert job_name(["train.data=runs/x=1,y/a b.jsonl"]) == "train.data-runs_x_1_y_a_b.jsonl"
    assert job_name([]) == "base"
    fixed, jobs = expand(["recipe=r", "student=a,b"])
    d = sweep_dir(fixed, jobs)
    assert d.parent == Path("runs/r") and d.name.startswith("sweep-") and d == sweep_dir(fixed, jobs)
    assert sweep_dir(fixed, jobs[:1]) != d  # a different grid is a different sweep
    assert sweep_dir([*fixed, "output=/tmp/s"], jobs) == Path("/tmp/s")
