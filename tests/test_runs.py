"""Tests of the run directory a user trusts: never shared or overwritten, resumable after a torn
metrics line, a bad override, a Ctrl-C or a kill mid-save, TensorBoard showing each update once,
one-line errors instead of tracebacks, an honest progress line, and the compilation cache. All on
the physics-free PointMass (tests/probe_envs.py), so nothing compiles MJX.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import probe_envs  # noqa: E402
from tensorboardX.proto import event_pb2  # noqa: E402

import driver  # noqa: E402
import ppo  # noqa: E402
import runs  # noqa: E402
from config import ConfigError  # noqa: E402

# 128 env steps per update, 2 updates per chunk, 8 updates in all; checkpoints every 4 updates.
SMALL = {"num_envs": 16, "unroll_length": 8, "num_epochs": 1, "num_minibatches": 2,
         "actor_hidden": (8,), "critic_hidden": (8,), "updates_per_chunk": 2,
         "total_steps": 8 * 128, "checkpoint_every": 4, "num_seeds": 2}  # fmt: skip
ENV = probe_envs.PointMass()


def small_config(**changes) -> ppo.PPOConfig:
    return ppo.load_config(overrides=SMALL | changes)


def records(run_dir) -> list[tuple[int, int]]:
    """(update, seed) of every metrics.jsonl record, in file order."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [(r["update"], r["seed"]) for r in map(json.loads, f)]


def tensorboard_steps(run_dir, seed: int, tag: str = "loss/total") -> list[int]:
    """The steps of every `tag` scalar in the seed's TensorBoard event files, in file order."""
    steps = []
    directory = os.path.join(run_dir, "tb", f"seed{seed}")
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):  # TFRecord: length (8 bytes), its crc (4), event, crc (4)
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            steps += [event.step for v in event.summary.value if v.tag == tag]
    return steps


def snapshot(run_dir) -> dict[str, bytes]:
    """Every file under run_dir with its bytes."""
    files = {}
    for parent, _, names in os.walk(run_dir):
        for name in names:
            with open(os.path.join(parent, name), "rb") as f:
                files[os.path.relpath(os.path.join(parent, name), run_dir)] = f.read()
    return files


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run stopped after update 6, a chunk past its checkpoint at 4, as a killed run leaves it."""
    run_dir = str(tmp_path_factory.mktemp("stopped") / "run")
    ppo.run(small_config(), run_dir, ENV, stop_after=6)
    return run_dir


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The same run, uninterrupted, in a directory made for it beforehand: its final state."""
    return ppo.run(small_config(), str(tmp_path_factory.mktemp("straight")), ENV)


def copy_of(run_dir, tmp_path) -> str:
    """A copy of a run directory to change in one test."""
    target = str(tmp_path / "run")
    subprocess.run(["cp", "-r", run_dir, target], check=True)
    return target


def assert_same_state(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------------------------------------
# Run directories are never shared or overwritten
# ---------------------------------------------------------------------------------------------


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    prefix = str(tmp_path / "runs" / "walk-20260101-120000")
    made = [runs.new_run_dir(prefix) for _ in range(3)]
    assert made == [prefix, f"{prefix}-2", f"{prefix}-3"]
    assert all(os.path.isdir(d) for d in made)


def test_cli_names_a_new_directory_when_the_name_is_taken(cli, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(driver.time, "strftime", lambda _: "20260101-120000")
    taken = tmp_path / "runs" / "wildrobot_walk-20260101-120000"
    taken.mkdir(parents=True)
    (taken / "metrics.jsonl").write_text("another run's\n")
    assert cli(capsys, "total_steps=256")[0] == 0
    assert (taken / "metrics.jsonl").read_text() == "another run's\n"
    assert (tmp_path / "runs" / "wildrobot_walk-20260101-120000-2" / "checkpoint.msgpack").exists()


def test_a_fresh_run_never_writes_into_a_used_directory(stopped):
    """(An empty one is fine: the `straight` fixture trains in one.)"""
    before = snapshot(stopped)
    with pytest.raises(ConfigError, match="--resume"):
        ppo.run(small_config(), stopped, ENV)
    assert snapshot(stopped) == before


def test_a_run_directory_is_held_by_one_process_at_a_time(stopped):
    before = snapshot(stopped)
    with runs.hold_run_dir(stopped, resume=True), pytest.raises(ConfigError, match="in use"):
        ppo.run(small_config(), stopped, ENV, resume=True)
    assert snapshot(stopped) == before


def test_cli_refuses_an_existing_run_dir(cli, capsys, stopped):
    code, _, err = cli(capsys, "--run-dir", stopped)
    assert code == 2 and f"continue that run with --resume {stopped}" in err


# ---------------------------------------------------------------------------------------------
# Resume
# ---------------------------------------------------------------------------------------------


def test_resume_with_a_config_the_checkpoint_cannot_take_changes_nothing(stopped, tmp_path):
    run_dir = copy_of(stopped, tmp_path)
    before = snapshot(run_dir)
    with pytest.raises(ConfigError, match="checkpoint"):
        ppo.run(small_config(num_envs=32), run_dir, ENV, resume=True)
    assert snapshot(run_dir) == before


def test_resume_after_a_torn_metrics_line_and_a_killed_save(stopped, straight, tmp_path):
    """The process died appending a record and while writing a checkpoint's temporary file."""
    run_dir = copy_of(stopped, tmp_path)
    with open(os.path.join(run_dir, "metrics.jsonl"), "a") as f:
        f.write('{"update": 7, "seed": 0, "env_st')
    fd, leftover = tempfile.mkstemp(dir=run_dir, prefix=".checkpoint.msgpack.", suffix=runs.TEMP)
    os.write(fd, b"\0" * 1000)
    os.close(fd)
    resumed = ppo.run(small_config(), run_dir, ENV, resume=True)
    assert_same_state(resumed, straight)
    assert records(run_dir) == [(u, s) for u in range(1, 9) for s in range(2)]
    assert not os.path.exists(leftover)


def test_atomic_write_leftovers_are_what_remove_temp_files_removes(tmp_path, monkeypatch):
    """A save killed between writing and renaming leaves its temporary file; the next start
    removes exactly those."""
    (tmp_path / "keep.txt").write_text("x")

    def killed(*_):
        raise RuntimeError("killed before the rename")

    monkeypatch.setattr(os, "replace", killed)
    monkeypatch.setattr(os, "unlink", lambda _: None)  # a kill -9 runs no clean-up
    with pytest.raises(RuntimeError):
        runs.atomic_write(str(tmp_path / "checkpoint.msgpack"), b"data")
    monkeypatch.undo()
    assert len(os.listdir(tmp_path)) == 2
    runs.remove_temp_files(str(tmp_path))
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_tensorboard_shows_each_update_once_after_resume(stopped, tmp_path):
    run_dir = copy_of(stopped, tmp_path)
    assert tensorboard_steps(run_dir, 1) == [u * 128 for u in range(1, 7)]  # 5 and 6 to redo
    ppo.run(small_config(), run_dir, ENV, resume=True)
    for seed in range(2):
        assert tensorboard_steps(run_dir, seed) == [u * 128 for u in range(1, 9)]


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage"])
def test_resume_without_a_readable_checkpoint_is_a_one_line_error(stopped, tmp_path, damage):
    run_dir = copy_of(stopped, tmp_path)
    path = os.path.join(run_dir, "checkpoint.msgpack")
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    if damage != "missing":
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2] if damage == "truncated" else b"\x93garbage" * 100)
    before = snapshot(run_dir)
    with pytest.raises(ConfigError, match=re.escape(path)):
        ppo.run(small_config(), run_dir, ENV, resume=True)
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------------------------------------
# The command line: Ctrl-C, errors, overrides anywhere
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """`ppo.main` on PointMass with the SMALL config from a file: argv -> (exit code, out, err)."""
    monkeypatch.setattr(ppo, "default_env", lambda _: ENV)
    path = tmp_path / "small.toml"
    path.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in SMALL.items()))

    def main(capsys, *argv):
        code = 0
        try:
            ppo.main(["--config", str(path), "--compile-cache", "off", *argv])
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return main


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(
    cli, capsys, straight, tmp_path, monkeypatch
):
    run_dir = str(tmp_path / "run")
    checkpoint = os.path.join(run_dir, "checkpoint.msgpack")
    write = runs.MetricsLog.write

    def interrupted_in_chunk_3(log, metrics, first_update, batch_size):
        if first_update == 4:  # Ctrl-C while logging updates 5 and 6
            raise KeyboardInterrupt
        write(log, metrics, first_update, batch_size)

    monkeypatch.setattr(runs.MetricsLog, "write", interrupted_in_chunk_3)
    code, out, _ = cli(capsys, "--run-dir", run_dir, "checkpoint_every=0")  # no save of its own
    assert code == 130
    assert f"continue with: python ppo.py --resume {run_dir}" in out
    assert list(runs.load_msgpack(checkpoint)["leaves"][".update"]) == [4, 4]  # chunk 2's end

    monkeypatch.setattr(runs.MetricsLog, "write", write)
    assert cli(capsys, "--resume", run_dir)[0] == 0
    assert_same_state(runs.restore_tree(checkpoint, straight), straight)
    assert records(run_dir) == [(u, s) for u in range(1, 9) for s in range(2)]


def _killed(signum, _frame):
    """Stands in for SIGTERM's default action, which would end the test process."""
    raise AssertionError(f"signal {signum} reached the process's own handler")


@pytest.mark.parametrize(
    "signum, handler",
    [(signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, _killed)],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_real_ctrl_c_or_kill_waits_for_the_chunk(
    cli, capsys, tmp_path, monkeypatch, signum, handler
):
    """SIGINT (Ctrl-C) or SIGTERM (`kill`, a batch system's time limit) in the middle of a chunk's
    logging: the chunk finishes, is logged and saved, and the exit code is the shell's for that
    signal; the signal is not acted on in whatever code runs when it arrives
    (driver.deferred_interrupt)."""
    run_dir = str(tmp_path / "run")
    write = runs.MetricsLog.write

    def signalled_in_chunk_3(log, metrics, first_update, batch_size):
        if first_update == 4:
            os.kill(os.getpid(), signum)
        write(log, metrics, first_update, batch_size)  # still runs: nothing was raised

    monkeypatch.setattr(runs.MetricsLog, "write", signalled_in_chunk_3)
    before = signal.signal(signum, handler)  # Ctrl-C as in a terminal
    try:
        code, out, _ = cli(capsys, "--run-dir", run_dir, "checkpoint_every=0")
        assert signal.getsignal(signum) is handler  # restored
    finally:
        signal.signal(signum, before)
    assert code == 128 + signum
    assert f"continue with: python ppo.py --resume {run_dir}" in out
    checkpoint = runs.load_msgpack(os.path.join(run_dir, "checkpoint.msgpack"))
    assert list(checkpoint["leaves"][".update"]) == [6, 6]  # chunk 3's end
    assert records(run_dir) == [(u, s) for u in range(1, 7) for s in range(2)]


def test_cli_resume_errors_are_one_line(cli, capsys, stopped, tmp_path):
    run_dir = copy_of(stopped, tmp_path)
    os.unlink(os.path.join(run_dir, "checkpoint.msgpack"))
    code, _, err = cli(capsys, "--resume", run_dir)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(f"no checkpoint '{run_dir}/checkpoint.msgpack'")


def test_overrides_go_anywhere_on_the_command_line(cli, capsys):
    code, _, err = cli(capsys, "num_envs=8", "--num-seeds", "1", "lr=1e-3")
    assert code == 2 and "unknown config key 'lr'" in err


# ---------------------------------------------------------------------------------------------
# The progress line
# ---------------------------------------------------------------------------------------------


def chunk_metrics(**values) -> dict[str, np.ndarray]:
    """(1 seed, 2 updates) metrics of a chunk, each metric its given value."""
    base = {"perf/steps_per_second": 5000.0, "episode/return": 1.5, "episode/length": 30.0,
            "episode/count": 4.0, "reward/main": 1.5, "loss/policy": 0.0, "loss/value": 0.0,
            "policy/entropy": 1.0, "policy/approx_kl": 0.0}  # fmt: skip
    return {k: np.full((1, 2), v) for k, v in (base | values).items()}


def test_progress_line_tells_no_episode_from_a_blow_up():
    config = small_config(num_seeds=1)
    line = driver.progress_line(config, chunk_metrics(), 4, 75.0, 3725.0)
    assert "return 1.500" in line and "reward/main 1.500" in line
    assert "1m15s elapsed  ~1h02m left" in line and "non-finite" not in line
    quiet = chunk_metrics(**{"episode/count": 0.0, "episode/return": np.nan,
                             "episode/length": np.nan, "reward/main": np.nan})  # fmt: skip
    line = driver.progress_line(config, quiet, 4, 5.0, 5.0)
    assert "return -" in line and "no episode ended" in line and "reward/main -" in line
    assert "nan" not in line
    broken = chunk_metrics(**{"env/nan": 1.0, "episode/return": 0.0, "episode/length": 1.0})
    assert "non-finite physics 100.0% of steps" in driver.progress_line(config, broken, 4, 5.0, 5.0)


# ---------------------------------------------------------------------------------------------
# The persistent compilation cache
# ---------------------------------------------------------------------------------------------


def test_a_second_start_loads_the_compiled_programs_from_the_cache(tmp_path):
    """Two processes, one cache directory: the second loads init and train chunk from it."""
    script = (
        "import sys, ppo, probe_envs\n"
        "ppo.default_env = lambda _: probe_envs.PointMass()\n"
        "ppo.main(sys.argv[1:])\n"
    )
    config = tmp_path / "small.toml"
    config.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in SMALL.items()))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",  # the probe compiles in < 1 s
               JAX_DEBUG_LOG_MODULES="jax._src.compiler",  # logs each cache hit and miss, but
               JAX_LOGGING_LEVEL="WARNING")  # only once the "jax" logger has a level  # fmt: skip
    cache = str(tmp_path / "cache")

    def start(run: str, cache: str) -> str:
        cmd = [sys.executable, "-c", script, "--config", str(config), "--run-dir",
               str(tmp_path / run), "--compile-cache", cache, "total_steps=256"]  # fmt: skip
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stderr

    assert "MISS for 'jit_train_chunk'" in start("a", cache)
    assert os.listdir(cache)
    second = start("b", cache)
    assert "cache hit for 'jit_init'" in second and "cache hit for 'jit_train_chunk'" in second


def test_the_compilation_cache_can_be_switched_off(cli, capsys):
    assert cli(capsys, "lr=1")[0] == 2  # stops at the bad key, after the flags took effect
    assert not jax.config.jax_enable_compilation_cache


def test_a_checkpoint_from_before_a_reward_term_resumes_with_it_at_zero(tmp_path, capsys):
    """A reward term added to the environment after a run was saved: its value and episode sums
    start at zero on resume, with a note; any other missing leaf is still an error."""
    path = str(tmp_path / "checkpoint.msgpack")
    old = {"env": {"rewards": {"pose": np.ones(2, np.float32)},
                   "term_sums": {"pose": np.full(2, 3.0, np.float32)}},
           "update": np.int32(7)}  # fmt: skip
    runs.save_msgpack(path, old)
    new = jax.tree.map(np.zeros_like, old)
    new["env"]["rewards"]["torque_limit"] = np.full(2, 5.0, np.float32)
    new["env"]["term_sums"]["torque_limit"] = np.full(2, 5.0, np.float32)
    got = runs.restore_tree(path, new, missing_ok=driver.new_reward_term)
    np.testing.assert_array_equal(got["env"]["rewards"]["torque_limit"], [0.0, 0.0])
    np.testing.assert_array_equal(got["env"]["term_sums"]["torque_limit"], [0.0, 0.0])
    np.testing.assert_array_equal(got["env"]["term_sums"]["pose"], [3.0, 3.0])
    assert (
        "has no ['env']['term_sums']['torque_limit'] (a newer reward term)"
        in capsys.readouterr().out
    )
    new["params"] = np.zeros(3, np.float32)
    with pytest.raises(ConfigError, match=r"has no \['params'\]"):
        runs.restore_tree(path, new, missing_ok=driver.new_reward_term)
    with pytest.raises(ConfigError, match=r"has no \['env'\]\['rewards'\]\['torque_limit'\]"):
        runs.restore_tree(path, new)  # strict by default
