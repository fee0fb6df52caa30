"""Tests of training over several devices and processes (parallel.py, driver.py), on CPU.

Two CPU devices in one process (`--xla_force_host_platform_device_count=2`) and two processes on
localhost joined by `jax.distributed` (gloo) must train PointMass like one device with the same
global batch and seed, and a checkpoint written on any of them must resume on any other. The
device count is fixed when JAX starts, so each layout runs in a process of its own
(tests/parallel_run.py); those tests are `slow` (about 2 min together: one process starts 35 s
late), and .ci/run runs them apart: `python -m pytest -q -m slow tests/test_parallel.py`.

Tolerance: a sharded program sums gradients, normalizer statistics and advantage means in
another order, so it agrees with one device up to float32 rounding, which Adam (dividing by the
root of small second moments) lets grow over the updates: measured at most 7e-5 relative. A
real difference in the math (a device seeing half a minibatch, statistics of half the envs, other
random draws) moves parameters by a share of the learning rate (3e-3 a step) and normalizer
means by a share of their spread (about 0.5), well above RTOL, ATOL.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import probe_envs  # noqa: E402

import driver  # noqa: E402
import parallel  # noqa: E402
import ppo  # noqa: E402
from config import ConfigError  # noqa: E402

WORKER = os.path.join(ROOT, "tests", "parallel_run.py")
RTOL, ATOL = 1e-3, 1e-4


def worker(cache: str, *args: str) -> subprocess.Popen:
    """tests/parallel_run.py with `args`; compiled programs shared through the `cache` directory."""
    cmd = [sys.executable, WORKER, *args]
    env = os.environ | {"JAX_COMPILATION_CACHE_DIR": cache}
    out = subprocess.PIPE
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


def finish(*procs: subprocess.Popen) -> list[str]:
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
    return outs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> str:
    """Run directories of every layout: one device, two devices, two processes, cross-resumed."""
    base = tmp_path_factory.mktemp("parallel")
    d = lambda name: str(base / name)  # noqa: E731
    cache = d("cache")
    address = f"127.0.0.1:{free_port()}"
    two_processes = ["--coordinator", address, "--num-processes", "2"]
    runs = [f"{d('procs2')}:full", f"{d('procs2_stop')}:stop"]
    late = ["--late", "35"]  # process 1 reaches the first collective 35 s after process 0
    procs = [worker(cache, *two_processes, "--process-id", str(i), *late[: 2 * i], *runs)
             for i in range(2)]  # fmt: skip
    outs = finish(*procs)
    assert "devices 2 processes 2" in outs[0]
    # One device: the reference, a run to resume on two devices, and the two processes' run.
    finish(worker(cache, f"{d('one')}:full", f"{d('one_stop')}:stop", f"{d('procs2_stop')}:resume"))
    two = [f"{d('two')}:full", f"{d('one_stop')}:resume", f"{d('two_stop')}:stop"]
    finish(worker(cache, "--devices", "2", *two, f"{d('two_stop')}:resume"))
    return str(base)


def final_state(run_dir: str) -> dict[str, np.ndarray]:
    with np.load(os.path.join(run_dir, "state.npz")) as f:
        return dict(f)


def assert_trains_like_one_device(runs: str, name: str) -> None:
    want, have = final_state(os.path.join(runs, "one")), final_state(os.path.join(runs, name))
    assert want.keys() == have.keys()
    assert any(".params.actor" in k for k in want)
    for k in want:
        np.testing.assert_allclose(have[k], want[k], rtol=RTOL, atol=ATOL, err_msg=k)


@pytest.mark.slow  # about 2 min for the four: JAX starts 5 times
def test_two_devices_train_like_one(runs):
    assert_trains_like_one_device(runs, "two")


@pytest.mark.slow  # about 2 min for the four: JAX starts 5 times
def test_two_processes_train_like_one_and_only_process_0_writes(runs):
    assert_trains_like_one_device(runs, "procs2")
    with open(os.path.join(runs, "procs2", "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [(r["update"], r["seed"]) for r in records] == [
        (u, s) for u in range(1, 5) for s in (0, 1)
    ]


@pytest.mark.slow  # about 2 min for the four: JAX starts 5 times
def test_a_checkpoint_resumes_on_another_device_count(runs):
    assert_trains_like_one_device(runs, "one_stop")  # saved on 1 device, resumed on 2
    assert_trains_like_one_device(runs, "procs2_stop")  # saved by 2 processes, resumed by 1


@pytest.mark.slow  # about 2 min for the four: JAX starts 5 times
def test_a_two_device_run_resumes_bitwise(runs):
    """Two devices are the CPU default on 2 cores: an interrupted run must go on exactly."""
    want, have = final_state(os.path.join(runs, "two")), final_state(os.path.join(runs, "two_stop"))
    assert want.keys() == have.keys()
    for k in want:
        np.testing.assert_array_equal(have[k], want[k], err_msg=k)


def test_a_chunk_keeps_its_data_on_the_devices():
    """No callback inside the compiled chunk, and calling it moves nothing to or from the host."""
    config = ppo.load_config(overrides={"num_envs": 8, "unroll_length": 4, "num_minibatches": 2,
                                        "actor_hidden": (8,), "critic_hidden": (8,)})  # fmt: skip
    trainer = ppo.make_train(config, probe_envs.PointMass())
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    state = jax.jit(driver.over_seeds(trainer.init, 1))(keys)
    chunk = jax.jit(driver.over_seeds(trainer.train_chunk, 1)).lower(state).compile()
    assert "callback" not in chunk.as_text()
    with jax.transfer_guard("disallow"):
        jax.block_until_ready(chunk(state))
        with pytest.raises(Exception, match="[Dd]isallowed"):  # the guard does catch a transfer
            chunk(jax.tree.map(np.asarray, state))
    assert jnp.isfinite(state.params.actor["params"]["mean"]["kernel"]).all()


@pytest.fixture
def cores(monkeypatch):
    """Set the cores this process may use, with no device count preset by flags or config."""
    monkeypatch.setattr(parallel, "preset_device_count", lambda: None)

    def set_cores(n: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(n)), raising=False)

    return set_cores


def test_a_cpu_run_takes_two_devices_per_core_that_divide_the_envs(cores):
    cores(2)
    assert parallel.cpu_device_count(512) == 4
    assert parallel.cpu_device_count(6) == 3  # the most of 4 that divide 6
    assert parallel.cpu_device_count(7) == 1  # no split of 7 envs over 2, 3 or 4 devices
    cores(3)
    assert parallel.cpu_device_count(512) == 4  # the most of 6 that divide 512
    cores(64)
    assert parallel.cpu_device_count(4096) == parallel.MAX_CPU_DEVICES
    cores(1)
    assert parallel.cpu_device_count(512) == 2


def test_a_cpu_device_count_asked_for_or_preset_wins(cores, monkeypatch):
    cores(2)
    assert parallel.cpu_device_count(512, requested=1) == 1
    assert parallel.cpu_device_count(512, distributed=True) == 1  # the host may hold others
    assert parallel.cpu_device_count(512, requested=2, distributed=True) == 2
    with pytest.raises(ConfigError, match="--cpu-devices 3 must .* divide num_envs 512"):
        parallel.cpu_device_count(512, requested=3)
    monkeypatch.setattr(parallel, "preset_device_count", lambda: 3)
    assert parallel.cpu_device_count(12) == 3


def test_flags_preset_the_cpu_device_count(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_foo=1 --xla_force_host_platform_device_count=3")
    assert parallel.flag_device_count() == 3
    monkeypatch.setenv("XLA_FLAGS", "")
    assert parallel.flag_device_count() is None


def test_cpu_matmuls_run_on_one_thread_unless_the_flags_say(monkeypatch):
    program = "import parallel, os; parallel.use_cpu_devices(1); print(os.environ['XLA_FLAGS'])"
    env = os.environ | {"XLA_FLAGS": "--xla_cpu_foo=1"}
    out = subprocess.run([sys.executable, "-c", program], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.split() == ["--xla_cpu_foo=1", "--xla_cpu_multi_thread_eigen=false"]
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
    parallel.single_thread_matmuls()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=true"


# jaxlib's batched LAPACK calls (QR in orthogonal initialization, the physics' Cholesky) split
# their batch over XLA's CPU thread pool and wait for the pieces; with 2 pool threads (a 2-core
# machine) two such calls at once can wait forever. Each case runs in a fresh process, and hung
# 2 of 2 times on a 2-core machine without its fix.
SEEDS_PROGRAM = """
import os, sys
sys.path[:0] = [{root!r}, os.path.join({root!r}, "tests")]
import jax, numpy as np
import driver, ppo, probe_envs
# The walking config's networks: their init under jax.vmap is 6 independent batched QR calls.
config = ppo.load_config(overrides={{"num_envs": 4, "unroll_length": 4, "num_minibatches": 2,
                                     "actor_hidden": (128, 128), "critic_hidden": (128, 128)}})
trainer = ppo.make_train(config, probe_envs.PointMass())
keys = jax.random.split(jax.random.PRNGKey(0), 2)
init = jax.jit(driver.init_over_seeds(trainer.init, 2))
for i in range(10):
    state = jax.block_until_ready(init(keys + i))
    for seed in range(2):  # each seed as initialized alone
        alone = jax.jit(trainer.init)(keys[seed] + i)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(alone), strict=True):
            np.testing.assert_array_equal(a[seed], b)
print("finished")
"""
DEVICES_PROGRAM = """
import sys
sys.path.insert(0, {root!r})
import parallel
parallel.use_cpu_devices(parallel.cpu_device_count(8))  # what driver.main does first
import jax, jax.numpy as jnp
mesh = parallel.make_mesh()
# 128 matrices a device: 4 a device no longer hung with jax 0.10.2 on a 2-core AMD EPYC, 128 did.
x = jax.random.normal(jax.random.PRNGKey(0), (256, 64, 64))
x = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(parallel.AXIS)))
qr = jax.jit(jax.vmap(lambda a: jnp.linalg.qr(a)[0]))  # one batched QR on each device at once
for i in range(20):
    jax.block_until_ready(qr(x + i))
print("finished")
"""


@pytest.mark.parametrize(
    "devices, program",
    [(1, SEEDS_PROGRAM), (2, DEVICES_PROGRAM)],
    ids=["seeds-initialized-one-by-one", "two-devices-sized-pool"],
)
def test_batched_lapack_never_hangs_the_cpu_thread_pool(devices, program):
    env = os.environ | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    env.pop("NPROC", None)
    try:
        out = subprocess.run([sys.executable, "-c", program.format(root=ROOT)], env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"no result within 120 s on {devices} device(s): hung")
    assert out.returncode == 0 and "finished" in out.stdout, out.stderr[-2000:]
