"""Issue 14: nothing lost, nothing silently wrong. The run-directory guard (lock, recorded config hash, output
check), the input counter, duplicate ids across a crash, incomplete checkpoints, and the small hostile-input cases.
Each test fails on the code before the fix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlcot.cli import main
from dlcot.commands import run_command
from dlcot.config import compose, prepare_run_dir
from dlcot.errors import ConfigError, RecordError
from dlcot.records import Problem, Trace, atomic_write_json, atomic_write_text, read_records


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------------------ lock
def test_a_second_process_on_the_same_output_is_refused_with_the_holders_pid(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from dlcot.rundir import lock; lock(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(60)", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=rf"another dlcot process \(pid {holder.pid}\) is writing here"):
            run_command("generate", ["data.n_problems=3", f"output={out}"])
        assert not (out / "traces.jsonl").exists()
    finally:
        holder.kill()  # kill -9: the kernel drops its lock, nothing stale is left
        holder.wait()
    run_command("generate", ["data.n_problems=3", f"output={out}"])
    assert len((out / "traces.jsonl").read_text().splitlines()) == 3


def _holding(path: Path) -> subprocess.Popen:
    """A process that holds the lock file `path` (as a shared stage's lock) until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from dlcot import rundir; "
         "cm = rundir.waiting_lock(Path(sys.argv[1]), 'x'); cm.__enter__(); print('locked', flush=True); "
         "time.sleep(60)", str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_shared_stage_lock_waits_for_its_holder_then_times_out_naming_it(tmp_path, caplog):
    from dlcot import rundir

    caplog.set_level("INFO", logger="dlcot.rundir")
    path = tmp_path / "shared" / "generate-abc.lock"
    holder = _holding(path)
    try:
        with pytest.raises(ConfigError, match=rf"waited .* for shared stage a \(pid {holder.pid} holds {path}\)"), \
                rundir.waiting_lock(path, "shared stage a", timeout_s=0.6, report_s=0.2):
            raise AssertionError("entered while another process holds the lock")
        assert f"waiting for shared stage a: pid {holder.pid} holds" in caplog.text
    finally:
        holder.kill()  # kill -9: the kernel drops the lock
        holder.wait()
    with rundir.waiting_lock(path, "shared stage a", timeout_s=5):
        assert path.read_text().split() == [str(os.getpid())]


def test_a_lock_marker_of_another_host_names_the_host(tmp_path):
    """What filelock's fallback on a filesystem without locks leaves: a marker with pid and host."""
    from dlcot.rundir import holder

    (tmp_path / "m").write_text("4242\nnode17.cluster\n9876543\n")
    (tmp_path / "n").write_text("")
    assert holder(tmp_path / "m") == "pid 4242 on host node17.cluster" and holder(tmp_path / "n") == "pid unknown"


NO_FLOCK = """
import errno, sys, time
import filelock._native._unix as native
def no_flock(fd):
    raise OSError(errno.ENOSYS, "no locks on this filesystem")
native.lock_fd_nonblocking = no_flock  # what flock says on an NFS mount without locks
from dlcot import rundir
from dlcot.errors import ConfigError
try:
    rundir.lock(sys.argv[1])
except ConfigError as err:
    print(err, flush=True)
    raise SystemExit(1)
print("locked", flush=True)
if sys.argv[2] == "hold":
    time.sleep(60)
"""


def test_without_file_locks_a_marker_names_the_holder_and_a_dead_holders_is_taken_over(tmp_path):
    def run(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-W", "ignore", "-c", NO_FLOCK, str(tmp_path), mode],
                              capture_output=True, text=True, timeout=60)

    holder = subprocess.Popen([sys.executable, "-W", "ignore", "-c", NO_FLOCK, str(tmp_path), "hold"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = run("once")
        assert second.returncode == 1
        assert f"another dlcot process (pid {holder.pid}) is writing here" in second.stdout
    finally:
        holder.kill()  # kill -9 leaves the marker file behind
        holder.wait()
    assert (tmp_path / ".dlcot.lock").exists()
    assert run("once").stdout.strip() == "locked"  # the marker of a dead process of this host is taken over


# ------------------------------------------------------------------------------------------ config hash
TRAIN = ["student=tiny_qwen2", "train.data=data.jsonl"]


def _checkpoint(out: Path, step: int, complete: bool = True) -> Path:
    ckpt = out / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"weights")
    if complete:
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return ckpt


def test_train_refuses_the_checkpoints_of_another_config(tmp_path):
    out = tmp_path / "run"
    prepare_run_dir(compose("train", [*TRAIN, f"output={out}"]))
    _checkpoint(out, 32)
    prepare_run_dir(compose("train", [*TRAIN, f"output={out}"]))  # same config: resumes
    with pytest.raises(ConfigError, match="unfinished work \\(checkpoint-32\\).*another config"):
        prepare_run_dir(compose("train", [*TRAIN, "train.learning_rate=0.1", f"output={out}"]))
    # starting over on purpose is allowed
    prepare_run_dir(compose("train", [*TRAIN, "train.learning_rate=0.1", "train.resume=never", f"output={out}"]))


def test_enhance_resumes_with_another_worker_count_but_not_another_policy():
    from dlcot.config import reads_hash

    base = compose("enhance", ["input=t.jsonl"])
    assert reads_hash(base, "enhance") == reads_hash(compose("enhance", ["input=t.jsonl", "enhance.workers=7"]),
                                                     "enhance")
    assert reads_hash(base, "enhance") != reads_hash(compose("enhance", ["input=t.jsonl", "enhance=none"]),
                                                     "enhance")


def test_train_resume_skips_a_checkpoint_cut_by_a_kill_during_its_save(tmp_path):
    from dlcot.train.fit import resume_checkpoint

    train = compose("train", TRAIN).train
    _checkpoint(tmp_path, 16)
    _checkpoint(tmp_path, 32, complete=False)
    _checkpoint(tmp_path, 8)
    assert resume_checkpoint(train, tmp_path) == str(tmp_path / "checkpoint-16")
    (tmp_path / "checkpoint-16" / "trainer_state.json").write_text('{"global_st')  # torn while written
    assert resume_checkpoint(train, tmp_path) == str(tmp_path / "checkpoint-8")


def test_a_finished_directory_may_be_rerun_with_another_config(tmp_path):
    """Only unfinished work is bound to its config: a finished run's outputs are simply replaced."""
    run_command("generate", ["data.n_problems=3", f"output={tmp_path}"])
    run_command("generate", ["data.n_problems=4", f"output={tmp_path}"])
    assert len((tmp_path / "traces.jsonl").read_text().splitlines()) == 4


# ------------------------------------------------------------------------------------------ output paths
COMMANDS = {"generate": [], "enhance": ["input=x.jsonl"], "mcts": [], "eval": [], "train": [], "run": [],
            "segment": ["input=x.jsonl"], "report": ["runs=."]}


@pytest.mark.parametrize("command, case", [*((c, "is_a_file") for c in sorted(COMMANDS)),
                                           ("generate", "under_a_file"), ("segment", "under_a_file"),
                                           ("eval", "read_only"), ("enhance", "read_only")])
def test_a_bad_output_path_is_one_line_before_any_work(command, case, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    if case == "read_only" and os.access(locked, os.W_OK):  # root ignores the mode: answer as for another user
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    target = {"is_a_file": blocker, "under_a_file": blocker / "sub" / "out", "read_only": locked / "out"}[case]
    if command == "segment" and case == "is_a_file":
        target = tmp_path  # a directory where segment wants a file
    code = main([command, *COMMANDS[command], f"output={target}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"output={target}" in err
    locked.chmod(0o700)


def test_segment_output_dir_slash_fails_before_reading_the_input(tmp_path):
    src = _jsonl(tmp_path / "t.jsonl", [{"id": "a", "problem": "p", "reasoning": "r", "gold_answer": "1"}])
    with pytest.raises(ConfigError, match="is a directory"):
        run_command("segment", [f"input={src}", f"output={tmp_path}/seg/"])
    assert not (tmp_path / "seg").exists()


def test_sigterm_ends_a_command_like_ctrl_c_in_one_line(tmp_path, monkeypatch, capsys):
    import signal

    from dlcot import commands

    def busy(cfg):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("SIGTERM was not delivered")

    def unhandled(signum, frame):
        raise AssertionError("dlcot installed no SIGTERM handler")

    previous = signal.signal(signal.SIGTERM, unhandled)  # not the default action: that would end pytest
    monkeypatch.setattr(commands, "resolve_command", lambda name: busy)
    try:
        code = main(["generate", f"output={tmp_path}"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert code == 143 and err.count("\n") == 1 and "interrupted (SIGTERM)" in err and "Traceback" not in err


CHILDREN = """
import multiprocessing as mp, subprocess, time
from dlcot import procs
procs.install()
worker = mp.get_context("fork").Process(target=time.sleep, args=(60,))
worker.start()
command = subprocess.Popen(["sleep", "60"], preexec_fn=procs.exec_dies_with_parent)
sigint = open(f"/proc/{command.pid}/status").read().split("SigIgn:")[1].split()[0]
assert int(sigint, 16) & (1 << 1) == 0, "the started command must not inherit an ignored Ctrl-C"
print(worker.pid, command.pid, flush=True)
time.sleep(60)
"""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_forked_workers_and_started_commands_end_with_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", CHILDREN], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2 and all(_running(p) for p in pids)
    parent.kill()  # kill -9: no cleanup code of the parent runs
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _running(p)]


# ------------------------------------------------------------------------------------------ accounting
def test_duplicate_id_plus_a_crash_drops_no_problem(tmp_path):
    """The duplicate's reject is written first under the original's id; the resumed run must still do it."""
    probs = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "problem": "a plus one?", "answer": "2"},
                                          {"id": "a", "problem": "again a", "answer": "2"},
                                          {"id": "b", "problem": "b plus one?", "answer": "2"}])
    stored = _jsonl(tmp_path / "said.jsonl", [{"id": "a", "response": "<think>one and one</think>2"},
                                              {"id": "b", "response": "<think>two</think>2"}])
    out = tmp_path / "out"
    out.mkdir()
    # what a crash right after the input pass leaves: the duplicate's reject, no trace yet
    _jsonl(out / "rejected.jsonl.partial", [{"id": "a", "reason": "duplicate_id", "detail": "p.jsonl:2"}])
    (out / "traces.jsonl.partial").write_text("")
    run_command("generate", [f"input={probs}", "teacher.name=replayed", "teacher.model=replayed", "engine=replay",
                             f"engine.path={stored}", f"output={out}"])
    traces = [json.loads(x)["id"] for x in (out / "traces.jsonl").read_text().splitlines()]
    rejects = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert sorted(traces) == ["a", "b"] and [(r["id"], r["reason"]) for r in rejects] == [("a", "duplicate_id")]
    assert json.loads((out / "stats.json").read_text())["n_input"] == 3


def test_enhance_stats_check_the_outputs_against_the_inputs_read(tmp_path):
    """stats.json's n_input is what was read: outputs holding more or fewer lines are an error, not a figure."""
    from dlcot.enhance import stats

    row = {"id": "a", "lineage": {"tokens": {"before": 4, "after": 2, "by_kind_before": {}, "by_kind_after": {},
                                             "cut_by_reason": {}}, "segments": [], "answer_preserved": True}}
    _jsonl(tmp_path / "enhanced.jsonl", [row, {**row, "id": "b"}])
    _jsonl(tmp_path / "rejected.jsonl", [{"id": "c", "reason": "bad_json", "detail": ""}])
    kw = {"tokenizer": "t", "policy": "dlcot", "backend": "offline", "marks_error_spans": False}
    assert stats.compute(tmp_path, n_input=3, **kw)[0]["n_input"] == 3
    with pytest.raises(RecordError, match="read 4 input records but the outputs hold 2 kept \\+ 1 rejected"):
        stats.compute(tmp_path, n_input=4, **kw)


# ------------------------------------------------------------------------------------------ small cases
def test_a_utf8_bom_does_not_cost_the_first_record(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"id": "a", "problem": "p", "answer": "1"}\n'
                     + b'{"id": "b", "problem": "q", "answer": "2"}\n')
    assert [r.id for r in read_records(path, Problem)] == ["a", "b"]


def test_outputs_are_readable_by_the_group_and_others(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_json(tmp_path / "b.json", {})
    finally:
        os.umask(old)
    assert {(tmp_path / n).stat().st_mode & 0o777 for n in ("a.txt", "b.json")} == {0o644}


@pytest.mark.parametrize("override, match", [
    ("data.n_problems=-5", "data.n_problems=-5: must be >= 0"),
    ("eval.n=0", "eval.n=0: must be >= 1"),
    ("data.n_problems=abc", "data.n_problems: .*'abc'.*expected int"),
    ("eval.chat=maybe", "eval.chat: .*expected bool"),
    ("eval.limit=x", "eval.limit: .*expected int \\| None"),
])
def test_bad_values_name_the_key_and_the_expected_type(override, match):
    with pytest.raises(ConfigError, match=match):
        compose("generate", [override])


def test_report_names_a_truncated_or_non_object_metrics_file(tmp_path):
    bad = tmp_path / "a" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text('{"benchmark": "math5')
    with pytest.raises(RecordError, match=f"{bad}: not valid JSON"):
        run_command("report", [f"runs={tmp_path}"])
    bad.write_text("[1, 2]")
    with pytest.raises(RecordError, match=f"{bad}: expected a JSON object, got list"):
        run_command("report", [f"runs={tmp_path}"])


def test_eval_without_any_prediction_says_why(tmp_path):
    bench = _jsonl(tmp_path / "bench.jsonl", [{"unique_id": "p1", "problem": "2+2?", "answer": "4"}])
    stored = _jsonl(tmp_path / "said.jsonl", [{"id": "other/0", "problem": "2+2?", "response": "\\boxed{4}"}])
    args = [f"eval.benchmark.path={bench}", "engine=replay", f"engine.path={stored}", "model=replayed"]
    with pytest.raises(RecordError, match="no predictions to score.*no_response.*engine.match=problem"):
        run_command("eval", [*args, f"output={tmp_path / 'by_id'}"])
    out = run_command("eval", [*args, "engine.match=problem", f"output={tmp_path / 'by_problem'}"])
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == 1.0


def test_a_replay_file_error_names_its_path_once(tmp_path):
    from dlcot.engines.replay import ReplayEngine

    bad = tmp_path / "said.jsonl"
    bad.write_text('{"id": "a", "response": "x"}\n{not json\n')
    with pytest.raises(RecordError) as err:
        ReplayEngine(str(bad), tokenizer=object())
    assert str(err.value).count(str(bad)) == 1 and f"{bad}:2" in str(err.value)


def test_segment_writes_its_counts(tmp_path):
    from dlcot.data.synthetic import synthetic_traces

    rows = [t.to_trace_record() for t in synthetic_traces(3, seed=1)] + [{"id": "x", "problem": "p"}]
    src = _jsonl(tmp_path / "t.jsonl", rows)
    out = run_command("segment", [f"input={src}", f"output={tmp_path / 'seg.jsonl'}", "enhance.workers=1"])
    stats = json.loads((out.with_name("seg.stats.json")).read_text())
    assert stats == {"n_input": 4, "n_kept": 3, "n_rejected": 1, "reject_reasons": {"missing_field": 1}}


def test_a_pair_whose_thoughts_are_the_same_is_dropped_whatever_its_responses():
    from dlcot.records import Pair
    from dlcot.train.pairs import dpo_row

    cfg = compose("train", ["train=dpo"])
    pair = Pair(id="p", problem="q", chosen="same thought", rejected="same thought ", chosen_response="1",
                rejected_response="2")
    made = dpo_row(pair, None, cfg.train, cfg.student)
    assert made.reason == "identical_pair"


def test_traces_reader_still_rejects_a_bom_in_the_middle(tmp_path):
    """Only the file's first bytes may be a BOM; elsewhere it is bad data, rejected with its line."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"id": "a", "problem": "p", "reasoning": "r", "gold_answer": "1"}\n'
                     b'\xef\xbb\xbf{"id": "b", "problem": "p", "reasoning": "r", "gold_answer": "1"}\n')
    recs = list(read_records(path, Trace))
    assert recs[0].id == "a" and recs[1].reason == "bad_json" and f"{path}:2" in recs[1].detail
