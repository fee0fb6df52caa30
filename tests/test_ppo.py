"""Tests of ppo.py: the math against plain loops and hand-computed values, probe environments with
known answers, learning on a cheap task, resume == uninterrupted, and the command line on a tiny
WildRobot config. Everything but the command-line runs uses the physics-free envs in probe_envs.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import probe_envs  # noqa: E402

import driver  # noqa: E402
import ppo  # noqa: E402
import runs  # noqa: E402
from config import ConfigError  # noqa: E402
from wrappers import normalize  # noqa: E402

# A small learner for the probe envs (overridden per test where the probe needs it).
PROBE = {
    "num_envs": 32,
    "unroll_length": 8,
    "num_epochs": 4,
    "num_minibatches": 4,
    "learning_rate": 3e-3,
    "actor_hidden": (16, 16),
    "critic_hidden": (16, 16),
    "entropy_coef": 0.0,
    "updates_per_chunk": 10,
}


def probe_config(**changes) -> ppo.PPOConfig:
    return ppo.load_config(overrides=PROBE | changes)


def train(config: ppo.PPOConfig, env, seed: int = 0):
    """Run the one-program `train` (init + every update) and return the final state and metrics."""
    trainer = ppo.make_train(config, env)
    return trainer, *jax.jit(trainer.train)(jax.random.PRNGKey(seed))


def value_of(trainer: ppo.Trainer, state: ppo.TrainState, critic_obs) -> np.ndarray:
    obs = normalize(state.critic_norm, jnp.asarray(critic_obs, jnp.float32))
    return np.asarray(trainer.critic.apply(state.params.critic, obs))


# ---------------------------------------------------------------------------------------------
# The math
# ---------------------------------------------------------------------------------------------


def test_gae_matches_python_loop():
    rng = np.random.default_rng(0)
    steps, envs, gamma, lam = 12, 5, 0.9, 0.8
    rewards, values, next_values = rng.normal(size=(3, steps, envs)).astype(np.float32)
    terminated = rng.random((steps, envs)) < 0.2
    truncated = (rng.random((steps, envs)) < 0.2) & ~terminated
    assert terminated.any() and truncated.any()

    expected = np.zeros((steps, envs))
    for e in range(envs):
        running = 0.0
        for t in reversed(range(steps)):
            bootstrap = 0.0 if terminated[t, e] else gamma * next_values[t, e]
            delta = rewards[t, e] + bootstrap - values[t, e]
            episode_goes_on = not (terminated[t, e] or truncated[t, e])
            running = delta + (gamma * lam * running if episode_goes_on else 0.0)
            expected[t, e] = running

    out = ppo.gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    np.testing.assert_allclose(out.advantages, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.returns, expected + values, rtol=1e-5, atol=1e-5)


def test_gae_bootstraps_on_truncation_only():
    one = np.ones((1, 2), np.float32)
    out = ppo.gae(
        rewards=one,
        values=0.5 * one,
        next_values=10.0 * one,
        terminated=np.array([[True, False]]),
        truncated=np.array([[False, True]]),
        gamma=0.9,
        lam=0.95,
    )
    np.testing.assert_allclose(out.advantages, [[1.0 - 0.5, 1.0 + 9.0 - 0.5]])


def test_policy_loss_hand_computed():
    ratio = np.array([0.5, 1.0, 1.5, 0.5])
    advantages = np.array([1.0, -1.0, 2.0, -1.0])
    # min(r A, clip(r, 0.8, 1.2) A): 0.5, -1, min(3, 2.4) = 2.4, min(-0.5, -0.8) = -0.8
    loss = ppo.policy_loss(jnp.log(ratio), jnp.zeros(4), advantages, clip_eps=0.2)
    np.testing.assert_allclose(loss, -(0.5 - 1.0 + 2.4 - 0.8) / 4, rtol=1e-6)


def test_value_loss_hand_computed():
    values, old, returns = np.array([1.0, 3.0]), np.array([2.0, 2.0]), np.zeros(2)
    np.testing.assert_allclose(ppo.value_loss(values, old, returns, 0.5, clip=False), 2.5)
    # Clipped predictions 1.5 and 2.5: max(1, 2.25) and max(9, 6.25) -> 0.5 * (2.25 + 9) / 2.
    np.testing.assert_allclose(ppo.value_loss(values, old, returns, 0.5, clip=True), 2.8125)


def test_approx_kl_and_advantage_normalization():
    kl = ppo.approx_kl(jnp.array([0.0, math.log(2.0)]), jnp.zeros(2))
    np.testing.assert_allclose(kl, (0.0 + 1.0 - math.log(2.0)) / 2, rtol=1e-6)
    adv = ppo.normalize_advantages(jnp.array([1.0, 2.0, 3.0, 6.0]))
    np.testing.assert_allclose([adv.mean(), adv.std()], [0.0, 1.0], atol=1e-6)


def test_action_distribution_is_the_exact_gaussian():
    mean, log_std = jnp.array([0.3, -2.0]), jnp.array([-1.0, 0.5])
    action = jnp.array([1.7, -0.4])  # outside [-1, 1] on purpose: scored before the env's clip
    std = np.exp(log_std)
    z = (action - mean) / std
    want = np.sum(-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi))
    dist = ppo.action_distribution(mean, log_std)
    np.testing.assert_allclose(dist.log_prob(action), want, rtol=1e-6)
    np.testing.assert_allclose(dist.entropy(), np.sum(log_std + 0.5 * np.log(2 * np.pi * np.e)))


def test_ppo_loss_combines_the_pieces():
    config = probe_config(value_coef=0.7, entropy_coef=0.01, clip_value_loss=True)
    actor, critic = ppo.Actor((8,), 2), ppo.Critic((8,))
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    params = ppo.Params(actor.init(k1, jnp.zeros(3)), critic.init(k2, jnp.zeros(4)))
    k = jax.random.split(k3, 7)
    n = 6
    batch = ppo.Batch(
        obs=jax.random.normal(k[0], (n, 3)),
        critic_obs=jax.random.normal(k[1], (n, 4)),
        action=jax.random.normal(k[2], (n, 2)),
        log_prob=jax.random.normal(k[3], (n,)),
        value=jax.random.normal(k[4], (n,)),
        advantage=jax.random.normal(k[5], (n,)),
        target=jax.random.normal(k[6], (n,)),
    )
    total, metrics = ppo.ppo_loss(params, batch, actor, critic, config)
    want = metrics["loss/policy"] + 0.7 * metrics["loss/value"] - 0.01 * metrics["policy/entropy"]
    np.testing.assert_allclose(total, want, rtol=1e-6)
    dist = ppo.action_distribution(*actor.apply(params.actor, batch.obs))
    adv = ppo.normalize_advantages(batch.advantage)
    pi = ppo.policy_loss(dist.log_prob(batch.action), batch.log_prob, adv, config.clip_eps)
    np.testing.assert_allclose(metrics["loss/policy"], pi, rtol=1e-6)


def test_symmetry_loss_compares_the_mirrored_mean_with_the_mean_mirrored():
    """symmetry = mean |mu(mirror_obs) - mirror_action mu(obs)|^2, added at symmetry_coef."""
    config = probe_config(symmetry_coef=0.3)
    actor, critic = ppo.Actor((8,), 2), ppo.Critic((8,))
    k = jax.random.split(jax.random.PRNGKey(1), 6)
    params = ppo.Params(actor.init(k[0], jnp.zeros(3)), critic.init(k[1], jnp.zeros(4)))
    n = 5
    batch = ppo.Batch(
        obs=jax.random.normal(k[2], (n, 3)),
        critic_obs=jax.random.normal(k[3], (n, 4)),
        action=jnp.zeros((n, 2)),
        log_prob=jnp.zeros(n),
        value=jnp.zeros(n),
        advantage=jax.random.normal(k[4], (n,)),
        target=jnp.zeros(n),
    )
    flip = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    plain, metrics = ppo.ppo_loss(params, batch, actor, critic, config)
    assert "loss/symmetry" not in metrics
    mirrored = batch.replace(mirror_obs=jax.random.normal(k[5], (n, 3)))
    total, metrics = ppo.ppo_loss(params, mirrored, actor, critic, config, flip)
    mean, _ = actor.apply(params.actor, batch.obs)
    mirror_mean, _ = actor.apply(params.actor, mirrored.mirror_obs)
    want = np.mean(np.sum((np.asarray(mirror_mean) - np.asarray(mean)[:, ::-1]) ** 2, axis=-1))
    np.testing.assert_allclose(metrics["loss/symmetry"], want, rtol=1e-5)
    np.testing.assert_allclose(total, plain + 0.3 * want, rtol=1e-5)


def test_symmetry_loss_trains_a_mirror_symmetric_policy():
    """With the loss on, the trained policy is its own mirror image (normalized observations
    included) far more closely than the same run without it."""
    env = probe_envs.MirroredPointMass()
    obs_m, act_m = (jnp.asarray(m, jnp.float32) for m in env.mirror())
    obs = jax.random.uniform(jax.random.PRNGKey(7), (256, 4), jnp.float32, -1.0, 1.0)

    def asymmetry(trainer: ppo.Trainer, state: ppo.TrainState) -> float:
        def mean(o):
            return trainer.actor.apply(state.params.actor, normalize(state.actor_norm, o))[0]

        return float(jnp.mean(jnp.sum((mean(obs @ obs_m.T) - mean(obs) @ act_m.T) ** 2, -1)))

    errors = []
    for coef in (0.0, 1.0):
        config = probe_config(total_steps=20_000, symmetry_coef=coef, **POINT_MASS)
        trainer, state, _ = train(config, env)
        errors.append(asymmetry(trainer, state))
    assert errors[1] < 0.1 * errors[0], errors


def test_symmetry_loss_needs_an_env_that_mirrors():
    with pytest.raises(ConfigError, match="symmetry_coef needs an env with mirror"):
        ppo.make_train(probe_config(symmetry_coef=0.5), probe_envs.PointMass())


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("num_envz=8", "'num_envz' (did you mean 'num_envs'?)"),
        ("env.noise.gyr=0.1", "'env.noise.gyr' (did you mean 'env.noise.gyro'?)"),
        ("num_envs=eight", "'num_envs' wants int"),
        ("num_minibatches=3", "num_minibatches 3 does not divide"),
        ("activation=gelu2", "activation 'gelu2'"),
        ("env.noise=0.1", "'env.noise' is a section"),
        ("num_envs", "not of the form key=value"),
    ],
)
def test_bad_overrides_are_named(override, named):
    with pytest.raises(ConfigError, match=None) as error:
        ppo.load_config(os.path.join(ROOT, "configs", "smoke.toml"), [override])
    assert named in str(error.value)


def test_configs_load_and_derive_sizes():
    config = ppo.load_config(os.path.join(ROOT, "configs", "smoke.toml"), ["num_envs=16"])
    assert (config.num_envs, config.batch_size, config.minibatch_size) == (16, 128, 64)
    assert config.num_updates == 2  # 192 steps in updates of 128, rounded up
    walk = ppo.load_config(ppo.DEFAULT_CONFIG)
    assert walk.batch_size == walk.num_envs * walk.unroll_length
    assert walk.num_updates * walk.batch_size >= walk.total_steps


def test_cli_rejects_a_bad_key_before_compiling():
    start = time.perf_counter()
    cmd = [sys.executable, "ppo.py", "--config", "configs/smoke.toml", "num_envs=8", "lr=1e-3"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "unknown config key 'lr'" in out.stderr
    assert time.perf_counter() - start < 60
    cmd[-1] = "env.imu_site=imu2"  # a model name: checked when the env is built, before compiling
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "site 'imu2'" in out.stderr


# ---------------------------------------------------------------------------------------------
# Probe environments: known answers
# ---------------------------------------------------------------------------------------------


def test_value_learns_a_constant_reward():
    trainer, state, _ = train(probe_config(total_steps=20_000), probe_envs.ConstantReward())
    np.testing.assert_allclose(value_of(trainer, state, [[1.0]]), 1.0, atol=0.05)


def test_policy_learns_the_rewarded_action():
    trainer, state, metrics = train(probe_config(total_steps=40_000), probe_envs.RewardedAction())
    mean, _ = trainer.actor.apply(state.params.actor, normalize(state.actor_norm, jnp.ones(1)))
    np.testing.assert_allclose(mean, probe_envs.RewardedAction.target, atol=0.1)
    assert metrics["episode/return"][-1] > 0.9


def test_value_discounts_the_next_step():
    config = probe_config(total_steps=40_000, gamma=0.9)
    trainer, state, _ = train(config, probe_envs.Discounting())
    np.testing.assert_allclose(value_of(trainer, state, [[0.0], [1.0]]), [0.9, 1.0], atol=0.05)


def test_value_bootstraps_through_truncation():
    config = probe_config(total_steps=80_000, gamma=0.8)
    trainer, state, _ = train(config, probe_envs.TruncatedForever())
    np.testing.assert_allclose(value_of(trainer, state, [[1.0]]), 1 / (1 - 0.8), rtol=0.05)


def test_truncation_bootstraps_from_the_final_observation_not_the_reset_one():
    """V(1) = 5 and V(0) = 4 at gamma 0.8; bootstrapping from the reset observation gives 2.8."""
    config = probe_config(total_steps=80_000, gamma=0.8)
    trainer, state, _ = train(config, probe_envs.TruncatedAfterTwo())
    np.testing.assert_allclose(value_of(trainer, state, [[1.0], [0.0]]), [5.0, 4.0], rtol=0.05)


def test_trains_a_probe_env_without_the_robot():
    """ppo.py with a physics-free env: the process never imports env.py or MuJoCo."""
    script = """
import sys, jax, numpy as np
import ppo, probe_envs
config = ppo.check_config(ppo.PPOConfig(**dict(PROBE, total_steps=40_000)))
trainer = ppo.make_train(config, probe_envs.RewardedAction())
_, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0))
assert np.asarray(metrics["episode/return"])[-1] > 0.9, metrics["episode/return"]
robot = sorted(m for m in sys.modules if m == "env" or m.startswith("mujoco"))
assert not robot, robot
print("trained without", robot)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    cmd = [sys.executable, "-c", f"PROBE = {PROBE!r}\n{script}"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trained without []" in out.stdout


# ---------------------------------------------------------------------------------------------
# Learning, seeds, types
# ---------------------------------------------------------------------------------------------

POINT_MASS = {"num_envs": 64, "unroll_length": 16, "actor_hidden": (32, 32),
              "critic_hidden": (32, 32), "gamma": 0.95}  # fmt: skip


def test_learns_point_mass_with_two_seeds_in_one_program():
    """A random policy returns about -30; PPO must pass -10 within 60k steps on both seeds."""
    config = probe_config(total_steps=60_000, **POINT_MASS)
    trainer = ppo.make_train(config, probe_envs.PointMass())
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    _, metrics = jax.jit(jax.vmap(trainer.train))(keys)
    returns = np.asarray(metrics["episode/return"])
    assert returns.shape == (2, config.num_updates)
    assert np.nanmean(returns[:, :3]) < -20
    final = np.nanmean(returns[:, -10:], axis=1)
    assert (final > -10).all(), final


def test_one_seed_without_vmap_matches_vmap():
    """`over_seeds` for one seed (no vmap, for speed) trains like a vmap over a batch of one."""
    config = probe_config(updates_per_chunk=2, **POINT_MASS)
    trainer = ppo.make_train(config, probe_envs.PointMass())
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    results = []
    for mapped in (driver.over_seeds, lambda fn, _: jax.vmap(fn)):
        state = jax.jit(mapped(trainer.init, 1))(keys)
        results.append(jax.jit(mapped(trainer.train_chunk, 1))(state))
    assert jax.tree.structure(results[0]) == jax.tree.structure(results[1])
    for a, b in zip(*map(jax.tree.leaves, results), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_train_chunk_keeps_input_types():
    """Same shapes, dtypes and weak types out as in: repeated chunk calls never recompile."""
    trainer = ppo.make_train(probe_config(), probe_envs.PointMass())
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    out, _ = jax.eval_shape(trainer.train_chunk, state)
    assert jax.tree.structure(out) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(out), strict=True):
        assert (a.shape, a.dtype, a.weak_type) == (b.shape, b.dtype, b.weak_type)


# ---------------------------------------------------------------------------------------------
# Run directories: checkpoints, resume, saved policies
# ---------------------------------------------------------------------------------------------


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    config = probe_config(total_steps=4 * 64 * 16, updates_per_chunk=2, checkpoint_every=2,
                          num_seeds=2, **POINT_MASS)  # fmt: skip
    env = probe_envs.PointMass()
    straight = ppo.run(config, str(tmp_path / "a"), env, profile=True)
    ppo.run(config, str(tmp_path / "b"), env, stop_after=2)  # "killed" after the checkpoint at 2
    assert not (tmp_path / "b" / "policy.msgpack").exists()
    resumed = ppo.run(config, str(tmp_path / "b"), env, resume=True)

    assert int(resumed.update[0]) == 4
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)  # bitwise, params, optimizer, normalizer, env, key

    def records(run):
        with open(tmp_path / run / "metrics.jsonl") as f:
            rows = [json.loads(line) for line in f]
        return [{k: v for k, v in r.items() if k != "perf/steps_per_second"} for r in rows]

    assert records("a") == records("b") and len(records("a")) == 4 * 2  # updates x seeds
    for name in ("config.json", "checkpoint.msgpack", "policy.msgpack", "learning_curves.png"):
        assert (tmp_path / "b" / name).exists(), name
    assert os.listdir(tmp_path / "a" / "profile")  # --profile wrote a trace

    # The saved policy acts like the trained actor: clip(mean(normalized obs)).
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, env.obs_size))
    actor = ppo.Actor(config.actor_hidden, env.action_size, config.activation)
    for path, seed in [("policy.msgpack", 0), ("policy.msgpack", 1), ("checkpoint.msgpack", 1)]:
        env_config, policy = ppo.load_policy(str(tmp_path / "b" / path), seed=seed)
        assert env_config == config.env
        params, stats = jax.tree.map(
            lambda x, i=seed: x[i], (resumed.params.actor, resumed.actor_norm)
        )
        want = jnp.clip(actor.apply(params, normalize(stats, obs))[0], -1, 1)
        np.testing.assert_allclose(policy(obs), want, rtol=1e-6, atol=1e-6)


def test_fine_tune_starts_from_a_saved_policy_and_warms_the_critic_first(tmp_path):
    """init_policy: the actor and its statistics come from the file, the critic starts fresh; for
    critic_warmup updates only the critic moves; a resumed run does not read the file again."""
    env = probe_envs.PointMass()
    base = probe_config(total_steps=2 * 64 * 16, updates_per_chunk=1, **POINT_MASS)
    ppo.run(base, str(tmp_path / "base"), env)
    start = tmp_path / "start.msgpack"
    shutil.copy(tmp_path / "base" / "policy.msgpack", start)
    _, saved_actor, saved_stats = ppo.load_policy_params(str(start))

    config = dataclasses.replace(base, init_policy=str(start), critic_warmup=2, checkpoint_every=2,
                                 total_steps=4 * base.batch_size)  # fmt: skip
    trainer = ppo.make_train(config, env)
    states = [jax.jit(trainer.init)(jax.random.PRNGKey(7))]
    chunk = jax.jit(trainer.train_chunk)
    for _ in range(3):
        states.append(chunk(states[-1])[0])
    loaded = (states[0].params.actor, states[0].actor_norm)
    for a, b in zip(*map(jax.tree.leaves, ((saved_actor, saved_stats), loaded)), strict=True):
        np.testing.assert_array_equal(a, b)

    def moved(tree_a, tree_b) -> bool:
        pairs = zip(*map(jax.tree.leaves, (tree_a, tree_b)), strict=True)
        return any((a != b).any() for a, b in pairs)

    steps = list(zip(states, states[1:], strict=False))
    assert [moved(a.params.actor, b.params.actor) for a, b in steps] == [False, False, True]
    assert all(moved(a.params.critic, b.params.critic) for a, b in steps)

    ppo.run(config, str(tmp_path / "tuned"), env, stop_after=2)
    start.unlink()  # the checkpoint holds the actor now
    resumed = ppo.run(config, str(tmp_path / "tuned"), env, resume=True)
    assert int(resumed.update[0]) == 4
    with pytest.raises(ConfigError, match="init_policy: policy file not found: '.*start.msgpack'"):
        ppo.make_train(config, env)


def test_fine_tune_names_a_policy_that_does_not_fit(tmp_path):
    env = probe_envs.PointMass()
    base = probe_config(total_steps=64 * 16, updates_per_chunk=1, **POINT_MASS)
    ppo.run(base, str(tmp_path / "base"), env)
    start = str(tmp_path / "base" / "policy.msgpack")
    cases = [
        ({"actor_hidden": (32, 8)}, r"hidden_1/bias is \(32,\) there, \(8,\) here"),
        ({"actor_hidden": (32, 32, 32)}, "has no actor/params/hidden_2"),
        ({"actor_hidden": (32,)}, "more actor arrays"),
    ]
    for changes, named in cases:
        with pytest.raises(ConfigError, match=named):
            ppo.make_train(dataclasses.replace(base, init_policy=start, **changes), env)
    with pytest.raises(ConfigError, match="1 observations"):
        ppo.make_train(dataclasses.replace(base, init_policy=start), probe_envs.RewardedAction())


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint.msgpack")
    runs.save_msgpack(path, {"w": np.arange(3.0)}, step=1)

    def fail(fd):
        raise OSError("disk gone mid-write")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        runs.save_msgpack(path, {"w": np.arange(3.0) + 10}, step=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["checkpoint.msgpack"]  # no temp file left behind
    saved = runs.load_msgpack(path)
    assert saved["step"] == 1
    np.testing.assert_array_equal(saved["leaves"]["['w']"], np.arange(3.0))


# ---------------------------------------------------------------------------------------------
# The command line on WildRobot (tiny config; compiling the MJX step dominates)
# ---------------------------------------------------------------------------------------------


def test_cli_smoke_run_writes_a_run_directory(tmp_path):
    run_dir = tmp_path / "smoke"
    cmd = [sys.executable, "ppo.py", "--config", "configs/smoke.toml", "--run-dir", str(run_dir)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "compiled in" in out.stdout and "steps/s" in out.stdout
    assert "reward/tracking_lin_vel" in out.stdout
    # On CPU the 8 envs split over two devices per core: the most of 2, 4, 8 the cores allow.
    devices = max(d for d in (2, 4, 8) if d <= 2 * len(os.sched_getaffinity(0)))
    assert f"on {devices} devices in 1 process\n" in out.stdout
    for name in ("config.json", "checkpoint.msgpack", "policy.msgpack", "learning_curves.png"):
        assert (run_dir / name).stat().st_size > 0, name
    with open(run_dir / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["update"] for r in records] == [1, 2, 3]
    assert {"loss/policy", "loss/value", "policy/entropy", "policy/approx_kl"} <= set(records[0])
    assert any(
        name.startswith("events.out.tfevents") for name in os.listdir(run_dir / "tb" / "seed0")
    )

    from env import WildRobotEnv

    env_config, policy = ppo.load_policy(str(run_dir / "checkpoint.msgpack"))
    obs_size = WildRobotEnv(env_config).obs_size
    action = policy(jnp.zeros(obs_size))
    assert action.shape == (9,) and bool(jnp.all(jnp.abs(action) <= 1.0))

    # The whole train state, MJX data included, restores from the checkpoint with its types.
    config = ppo.load_config(str(run_dir / "config.json"))
    trainer = ppo.make_train(config)
    keys = jax.random.split(jax.random.PRNGKey(config.seed), config.num_seeds)
    template = jax.eval_shape(jax.vmap(trainer.init), keys)
    state = runs.restore_tree(str(run_dir / "checkpoint.msgpack"), template)
    assert int(state.update[0]) == 3


@pytest.mark.slow
def test_wildrobot_resume_equals_uninterrupted(tmp_path):
    """The smoke config on WildRobot: 4 updates straight == 2, checkpoint, resume, 2 more."""
    config = ppo.load_config(os.path.join(ROOT, "configs", "smoke.toml"), ["total_steps=256"])
    straight = ppo.run(config, str(tmp_path / "a"))
    ppo.run(config, str(tmp_path / "b"), stop_after=2)
    resumed = ppo.run(config, str(tmp_path / "b"), resume=True)
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
