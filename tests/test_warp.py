"""MuJoCo Warp (`env.impl = "warp"`) against MJX's JAX implementation, on this CPU.

Warp also compiles its kernels for a CPU, so the same env runs with both implementations here. The
trajectory test rolls 4 robots for 50 control steps (1 s) with the same random actions through
`VecEnv` (resets, action filter and delay included) and compares the joint and root positions.
With a converged solver (Newton, 50 iterations) the two implementations compute the same physics,
so they agree to float32 rounding grown over 200 physics steps: 1e-6 measured, 1e-5 asserted. At
the training settings (CG, 4 iterations) neither solver converges, each stops at a different
point, and the trajectories part by about 1e-3 after 2 control steps and 0.08 after 50: that
difference is the solvers', not the physics'.

The Warp kernels take about a minute to build the first time on a machine (then Warp's kernel
cache holds them) and each rollout compiles for about 30 s, so these tests are `slow`: .ci/run
runs them apart (`python -m pytest -q -m slow tests/test_warp.py`).
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import serialization

import amp
import ppo
import runs
from config import ConfigError, override
from env import WARP_CAPACITY_OVERFLOWS, EnvConfig, WildRobotEnv, nominal_config
from wrappers import VecEnv

pytest.importorskip("mujoco_warp", reason="MuJoCo Warp: pip install -r requirements-warp.txt")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_ENVS, STEPS = 4, 50
CONVERGED = {"solver": "newton", "iterations": 50, "ls_iterations": 20}


def rollout(impl: str) -> tuple[np.ndarray, np.ndarray]:
    """qpos (STEPS, NUM_ENVS, nq) and rewards of STEPS random-action control steps."""
    config = override(nominal_config(EnvConfig()), {**CONVERGED, "impl": impl})
    env = WildRobotEnv(override(config, {"warp_max_envs": NUM_ENVS}))
    venv = VecEnv(env, NUM_ENVS)

    def run(key):
        def body(state, k):
            action = 0.3 * jax.random.normal(k, (NUM_ENVS, env.action_size))
            state = venv.step(state, action)
            return state, (state.env.data.qpos, state.env.reward)

        keys = jax.random.split(jax.random.PRNGKey(1), STEPS)
        return jax.lax.scan(body, venv.reset(key), keys)[1]

    qpos, reward = jax.jit(run)(jax.random.PRNGKey(0))
    return np.asarray(qpos), np.asarray(reward)


@pytest.mark.slow  # about 2 min with a cold Warp kernel cache
def test_warp_follows_the_jax_trajectory():
    qpos_jax, reward_jax = rollout("jax")
    qpos_warp, reward_warp = rollout("warp")
    # The robots moved (a test of two standing statues would pass with any physics).
    assert np.abs(qpos_jax[-1] - qpos_jax[0]).max() > 0.05
    assert np.abs(qpos_warp - qpos_jax).max() < 1e-5
    np.testing.assert_allclose(reward_warp, reward_jax, atol=1e-4)


@pytest.mark.slow
def test_warp_trains():
    """A few PPO updates with Warp physics: the trainer's resets, sanitizing and logging run."""
    config = ppo.load_config("configs/smoke.toml", ["env.impl=warp", "env.warp_max_envs=8"])
    assert config.num_envs <= 8
    state, metrics = jax.jit(ppo.make_train(config).train)(jax.random.PRNGKey(0))
    assert np.isfinite(np.asarray(metrics["loss/total"])).all()
    assert int(state.update) == config.num_updates
    assert np.isfinite(np.asarray(state.env.env.data.qpos)).all()


def test_warp_checks_its_batch():
    env = WildRobotEnv(override(EnvConfig(), {"impl": "warp", "warp_max_envs": 4}))
    venv = VecEnv(env, 8)
    vstate = jax.eval_shape(venv.reset, jax.random.PRNGKey(0))
    action = jax.ShapeDtypeStruct((8, env.action_size), np.float32)
    with pytest.raises(ConfigError, match="env.warp_max_envs 4 is below the 8 envs Warp steps"):
        jax.eval_shape(venv.step, vstate, action)  # checked as the step is traced
    env.check_batch(8, devices=2)  # 4 envs on each of 2 devices fit
    frames = jax.tree.map(lambda x: x[None], env.home_data)
    starts = amp.ReferenceInit(env, frames, None, 0.5)  # AMP's wrapper passes them on
    assert starts.steps_per_device and starts.check_batch == env.check_batch
    with pytest.raises(ConfigError, match="below the 5 envs"):
        env.check_batch(10, devices=2)
    WildRobotEnv(EnvConfig()).check_batch(10**6, devices=8)  # the JAX implementation: no limits


def test_the_overflow_mask_is_warps_capacity_bits():
    """env.WARP_CAPACITY_OVERFLOWS spells out MuJoCo Warp's flags: it must not drift from them."""
    from mujoco_warp import OverflowType  # noqa: PLC0415

    capacity = ("NEFC", "NJMAX_NNZ", "BROADPHASE", "NARROWPHASE", "CCD")
    expected = sum(int(getattr(OverflowType, name)) for name in capacity)
    assert expected == WARP_CAPACITY_OVERFLOWS
    assert not WARP_CAPACITY_OVERFLOWS & int(OverflowType.ITERATIONS)


def test_a_warp_trained_policy_loads_without_warp(tmp_path):
    """Its saved config says impl "warp"; playing and exporting it use the JAX implementation."""
    payload = runs.load_msgpack("policies/wildrobot_walk.msgpack")
    saved = json.loads(payload["config"])
    saved["env"] = {**saved["env"], "impl": "warp"}
    path = tmp_path / "warp_policy.msgpack"
    runs.atomic_write(
        str(path), serialization.msgpack_serialize({**payload, "config": json.dumps(saved)})
    )
    config, _, _ = ppo.load_policy_params(str(path))
    assert config.env.impl == "jax"
    assert ppo.load_policy_params("policies/wildrobot_walk.msgpack")[0].env == config.env


TWO_DEVICES = """
import jax, numpy as np
import parallel
from config import override
from env import EnvConfig, WildRobotEnv, nominal_config
from wrappers import VecEnv

config = override(nominal_config(EnvConfig()), {"impl": "warp", "warp_max_envs": 2})
venv = VecEnv(WildRobotEnv(config), 4)

def run(key):
    def body(state, k):
        state = venv.step(state, 0.3 * jax.random.normal(k, (4, venv.action_size)))
        return state, state.env.data.qpos
    return jax.lax.scan(body, venv.reset(key), jax.random.split(key, 10))[1]

with jax.set_mesh(parallel.make_mesh()):  # 2 envs on each device
    split = jax.jit(run)(jax.random.PRNGKey(0))
    # The Warp call's operands are one device's envs: qpos (2, nq), not the whole batch's (4, nq).
    text = jax.jit(run).lower(jax.random.PRNGKey(0)).as_text()
    call = next(line for line in text.splitlines() if "custom_call @jax_callable" in line)
    local = "tensor<2x16xf32>" in call and "tensor<4x16xf32>" not in call
one = WildRobotEnv(override(config, {"warp_max_envs": 4}))
venv = VecEnv(one, 4)
whole = jax.jit(run)(jax.random.PRNGKey(0))  # no mesh: all 4 on the first device
print(jax.device_count(), local, float(np.abs(np.asarray(split) - np.asarray(whole)).max()))
"""


@pytest.mark.slow
def test_warp_steps_each_devices_own_envs():
    """Two CPU devices, each stepping its own 2 envs with Warp (wrappers.per_device), give the
    trajectory of one device stepping all 4: each env's physics is its own. (Without the
    `shard_map`, XLA gives every device the whole batch's Warp call: the same numbers, twice the
    work, buffers sized for all envs; the lowered call's shapes tell the two apart.)"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = subprocess.run(
        [sys.executable, "-c", TWO_DEVICES], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    devices, local, diff = out.stdout.split()[-3:]
    assert devices == "2" and local == "True" and float(diff) <= 1e-6
