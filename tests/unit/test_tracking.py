"""Tracking: nothing at all when disabled (the default), a real offline wandb run when asked, no network."""
from __future__ import annotations

from dlcot.config import compose
from dlcot.tracking import Tracker, report_to


def test_disabled_by_default_creates_nothing(tmp_path):
    cfg = compose("generate", [])
    assert cfg.wandb.mode == "disabled" and report_to(cfg) == []
    with Tracker(cfg, tmp_path, "generate") as tr:
        tr.log({"x": 1})
        assert tr.run is None
    assert list(tmp_path.iterdir()) == []


def test_offline_mode_writes_a_local_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose("generate", ["wandb.mode=offline", "wandb.project=dlcot-test"])
    assert report_to(cfg) == ["wandb"]
    with Tracker(cfg, tmp_path, "generate") as tr:
        assert tr.run is not None and tr.run.config["seed"] == 0
        tr.log({"loss": 1.5}, step=1)
        tr.summary({"n_kept": 3})
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))
