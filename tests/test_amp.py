"""Tests of amp.py: the discriminator's math against hand and analytic values, the replay buffer,
the compiled loop on a physics-free probe (no stale discriminator, raw-feature normalizer, reference
starts), and reference state initialization on WildRobot."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import probe_envs
import pytest

import amp
import ppo
from wrappers import normalizer_init, normalizer_update

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------------------------
# The math
# ---------------------------------------------------------------------------------------------


def test_gradient_penalty_of_a_linear_discriminator_is_its_squared_weight_norm():
    disc = amp.Discriminator(hidden=())  # a single Dense layer: D(x) = w.x + b
    params = disc.init(jax.random.key(0), jnp.zeros(6))
    w = np.asarray(params["params"]["score"]["kernel"])[:, 0]
    x = jax.random.normal(jax.random.key(1), (32, 6))
    penalty = amp.gradient_penalty(lambda v: disc.apply(params, v), x)
    np.testing.assert_allclose(penalty, np.sum(w**2), rtol=1e-6)


def test_disc_loss_takes_the_penalty_at_the_normalized_reference_input():
    """Linear D on features normalized by std 2: dD/d(normalized input) = w, while the gradient
    with respect to the raw features would be w / 2."""
    disc = amp.Discriminator(hidden=())
    params = disc.init(jax.random.key(0), jnp.zeros(4))
    w = np.asarray(params["params"]["score"]["kernel"])[:, 0]
    raw = jax.random.normal(jax.random.key(1), (1000, 2, 2)) * 2.0 + 3.0
    stats = normalizer_update(normalizer_init(2), raw.reshape(-1, 2))
    loss, metrics = amp.disc_loss(params, disc, stats, raw[:500], raw[500:], grad_penalty=10.0)
    np.testing.assert_allclose(metrics["amp/grad_penalty"], np.sum(w**2), rtol=1e-5)
    d_ref = disc.apply(params, amp.disc_input(stats, raw[:500]))
    d_pol = disc.apply(params, amp.disc_input(stats, raw[500:]))
    want = amp.lsgan_loss(d_ref, d_pol) + 10.0 * np.sum(w**2)
    np.testing.assert_allclose(loss, want, rtol=1e-5)


def test_lsgan_loss_style_reward_and_accuracy_by_hand():
    d_ref, d_pol = jnp.array([1.0, 0.0]), jnp.array([-1.0, 1.0])
    # 0.5 * mean((0, 1)) + 0.5 * mean((0, 4)) = 0.25 + 1.0
    np.testing.assert_allclose(amp.lsgan_loss(d_ref, d_pol), 1.25)
    d = jnp.array([1.0, 0.0, -1.0, -3.0, 3.0])
    np.testing.assert_allclose(amp.style_reward(d), [1.0, 0.75, 0.0, 0.0, 0.0])
    # reference: 1 of 2 above 0; policy: 1 of 2 below 0
    np.testing.assert_allclose(amp.accuracy(d_ref, d_pol), 0.5)


def test_discriminator_separates_two_shifted_gaussians():
    disc = amp.Discriminator(hidden=(32, 32))
    params = disc.init(jax.random.key(0), jnp.zeros(4))
    optimizer = optax.adam(3e-3)

    @jax.jit
    def train(params, key):
        def step(carry, key):
            params, opt_state = carry
            k1, k2 = jax.random.split(key)
            ref = jax.random.normal(k1, (256, 4)) + 1.0
            pol = jax.random.normal(k2, (256, 4)) - 1.0

            def loss(p):
                return amp.lsgan_loss(disc.apply(p, ref), disc.apply(p, pol))

            grads = jax.grad(loss)(params)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), None

        keys = jax.random.split(key, 300)
        return jax.lax.scan(step, (params, optimizer.init(params)), keys)[0][0]

    params = train(params, jax.random.key(1))
    k1, k2 = jax.random.split(jax.random.key(2))
    d_ref = disc.apply(params, jax.random.normal(k1, (2000, 4)) + 1.0)
    d_pol = disc.apply(params, jax.random.normal(k2, (2000, 4)) - 1.0)
    # Two unit Gaussians 4 apart along (1,1,1,1): the best classifier is right 97.7% of the time.
    assert float(amp.accuracy(d_ref, d_pol)) > 0.95
    assert float(d_ref.mean()) > 0.5 and float(d_pol.mean()) < -0.5


def test_replay_wraps_around_and_samples_only_what_was_added():
    replay = amp.replay_init(size=5, features=1)

    def pairs(start, n):
        values = jnp.arange(start, start + n, dtype=jnp.float32)
        return values[:, None, None] * jnp.ones((1, 2, 1))

    replay = amp.replay_add(replay, pairs(0, 3))
    sample = amp.replay_sample(replay, jax.random.key(0), 200)
    assert set(np.asarray(sample[:, 0, 0]).tolist()) == {0.0, 1.0, 2.0}  # never the empty slots
    replay = amp.replay_add(replay, pairs(3, 4))  # 7 added: slots 0, 1 hold 5, 6
    np.testing.assert_array_equal(replay.pairs[:, 0, 0], [5, 6, 2, 3, 4])
    assert int(replay.added) == 7
    replay = amp.replay_add(replay, pairs(10, 12))  # more than the size: the last 5 win
    np.testing.assert_array_equal(np.sort(replay.pairs[:, 0, 0]), [17, 18, 19, 20, 21])
    sample = amp.replay_sample(replay, jax.random.key(1), 500)
    assert set(np.asarray(sample[:, 0, 0]).tolist()) == {17.0, 18.0, 19.0, 20.0, 21.0}


# ---------------------------------------------------------------------------------------------
# The compiled loop on a physics-free probe
# ---------------------------------------------------------------------------------------------

PROBE = {
    "num_envs": 16,
    "unroll_length": 8,
    "num_epochs": 2,
    "num_minibatches": 2,
    "actor_hidden": (16,),
    "critic_hidden": (16,),
    "updates_per_chunk": 2,
    "amp": {"disc_hidden": (16,), "disc_batch_size": 64, "replay_size": 256,
            "reference_init": 0.5, "disc_steps": 2},
}  # fmt: skip


@pytest.fixture(scope="module")
def probe():
    """AMP on MotionProbe with a reference that moves at a steady +0.05 per step."""
    settings = amp.AMPSettings(**PROBE["amp"])
    config = amp.AMPConfig(**{k: v for k, v in PROBE.items() if k != "amp"}, amp=settings)
    config = ppo.check_config(config)
    env = probe_envs.MotionProbe()
    qpos = np.arange(40, dtype=np.float32)[:, None] * 0.05
    qvel = np.full((40, 1), 0.05, np.float32)
    frames = np.concatenate([qpos, qvel], axis=1)
    reference = amp.Reference(
        pairs=jnp.asarray(np.stack([frames[:-1], frames[1:]], axis=1)),
        starts=env.forward_states(qpos, qvel),
        phases=None,
    )
    trainer = amp.make_train(config, env, reference)
    state = jax.jit(trainer.init)(jax.random.key(0))
    chunk = jax.jit(trainer.train_chunk)
    return config, env, reference, trainer, state, chunk


def test_style_reward_uses_the_discriminator_in_the_state(probe):
    """Change only the discriminator's parameters: the style reward of the same rollout changes,
    and equals max(0, 1 - (d - 1)^2 / 4) of the state's discriminator."""
    _, _, _, _, state, chunk = probe
    _, metrics = chunk(state)
    flipped = state.replace(disc_params=jax.tree.map(lambda x: x + 0.7, state.disc_params))
    _, other = chunk(flipped)
    first = float(metrics["amp/style_reward"][0])
    assert abs(first - float(other["amp/style_reward"][0])) > 1e-3
    # Same rollout either way (the policy and keys are the same): only the reward moved.
    np.testing.assert_array_equal(metrics["amp/task_reward"][0], other["amp/task_reward"][0])


def test_style_reward_matches_the_formula_on_the_rollout(probe):
    config, env, _, trainer, state, _ = probe
    nets = ppo.make_nets(config, trainer.env)  # same networks; only the rollout is needed here
    features = lambda s: env.amp_features(s.data.qpos, s.data.qvel)  # noqa: E731
    venv = type(nets.venv)(nets.venv.env, config.num_envs, features)

    @jax.jit
    def manual(state):
        def observe(before, after):
            return jnp.stack([jax.vmap(features)(before.env), after.final_extra], axis=1)

        _, traj = ppo.rollout(venv, nets.actor, state.ppo, config.unroll_length, observe)
        pairs = traj.extra.reshape(-1, 2, 2)
        d = amp.Discriminator(config.amp.disc_hidden).apply(
            state.disc_params, amp.disc_input(state.amp_norm, pairs)
        )
        return amp.style_reward(d).mean(), pairs

    want, pairs = manual(state)
    _, metrics = probe[5](state)
    np.testing.assert_allclose(metrics["amp/style_reward"][0], want, rtol=1e-5)
    # A transition is (s, s') of one step: s' = s + qvel' for this probe.
    np.testing.assert_allclose(pairs[:, 1, 0], pairs[:, 0, 0] + pairs[:, 1, 1], atol=1e-6)


def test_normalizer_takes_raw_features_of_both_sources(probe):
    """After one update the AMP normalizer holds the statistics of raw (not normalized) features:
    this rollout's policy frames and as many reference frames."""
    _, _, reference, _, state, chunk = probe
    after, _ = chunk(state)
    stats = after.amp_norm
    assert float(stats.count) == 2 * 2 * (2 * 16 * 8)  # 2 updates x 2 sources x pairs x 2 frames
    # Raw velocities are 0.05 (reference) and about +-0.06 (policy noise): a spread far below
    # the unit spread of already-normalized features.
    assert 0.0 < float(stats.mean[1]) < 0.05 and 0.01 < float(stats.std[1]) < 0.2


def test_reference_starts_some_episodes_on_the_clip(probe):
    """reference_init 0.5: about half the resets start on a reference frame (qvel 0.05)."""
    _, env, reference, trainer, _, _ = probe
    starts = amp.ReferenceInit(env, reference.starts, None, 0.5)
    states = jax.jit(jax.vmap(starts.reset))(jax.random.split(jax.random.key(3), 400))
    on_clip = np.asarray(states.data.qvel[:, 0]) == np.float32(0.05)
    assert 0.4 < on_clip.mean() < 0.6
    frames = np.asarray(states.data.qpos[on_clip, 0]) / 0.05  # whole frames of the clip
    np.testing.assert_allclose(frames, np.round(frames), atol=1e-3)
    assert (np.asarray(states.data.qpos[~on_clip]) == 0).all()


def test_resume_equals_uninterrupted_and_the_policy_loads(probe, tmp_path):
    """The driver runs AMP like PPO: a run stopped after its checkpoint and resumed ends in the
    same state, bit for bit, as one that ran straight; the saved policy loads through ppo."""
    config, env, reference, *_ = probe
    config = dataclasses.replace(
        config, total_steps=4 * 16 * 8, updates_per_chunk=2, checkpoint_every=2
    )
    prepared = amp.Prepared(env, reference)
    straight = amp.run(config, str(tmp_path / "a"), prepared)
    amp.run(config, str(tmp_path / "b"), prepared, stop_after=2)
    resumed = amp.run(config, str(tmp_path / "b"), prepared, resume=True)
    assert int(resumed.update[0]) == 4
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    loaded, actor, _ = ppo.load_policy_params(str(tmp_path / "b" / "policy.msgpack"))
    assert loaded.actor_hidden == config.actor_hidden
    np.testing.assert_array_equal(
        actor["params"]["mean"]["kernel"], resumed.params.actor["params"]["mean"]["kernel"][0]
    )


def test_fine_tunes_a_saved_policy_as_ppo_does(probe, tmp_path):
    """init_policy and critic_warmup hold in AMP too (its init and update are PPO's): a run
    started from a saved policy and held for all its updates ends with the file's actor."""
    config, env, reference, *_ = probe
    config = dataclasses.replace(config, total_steps=2 * 16 * 8, updates_per_chunk=1)
    prepared = amp.Prepared(env, reference)
    amp.run(config, str(tmp_path / "a"), prepared)
    start = str(tmp_path / "a" / "policy.msgpack")
    _, saved, _ = ppo.load_policy_params(start)
    tuned = dataclasses.replace(config, init_policy=start, critic_warmup=2)
    held = amp.run(tuned, str(tmp_path / "b"), prepared)
    assert int(held.update[0]) == 2
    for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(held.params.actor), strict=True):
        np.testing.assert_array_equal(a, b[0])


# ---------------------------------------------------------------------------------------------
# WildRobot: reference starts and the command line
# ---------------------------------------------------------------------------------------------


def test_reference_start_puts_the_robot_in_the_clip_pose():
    """With reference_init 1 every reset starts on a clip frame: its pose, velocities and gait
    clock, the servos aimed at its joint angles as far as the action range reaches (so they hold
    the pose rather than yank it home)."""
    import motion
    from env import EnvConfig, WildRobotEnv

    config = EnvConfig(randomization=dataclasses.replace(
        EnvConfig().randomization, joint_offset=(0.0, 0.0)))  # fmt: skip
    env = WildRobotEnv(config)
    clips = motion.load_motion(os.path.join(ROOT, "data"), config)
    starts = amp.ReferenceInit(env, env.forward_states(clips.qpos, clips.qvel), clips.phase, 1.0)
    states = jax.jit(jax.vmap(starts.reset))(jax.random.split(jax.random.key(0), 8))
    qpos = np.asarray(states.data.qpos)
    frames = [int(np.argmin(np.abs(clips.qpos - q).sum(1))) for q in qpos]
    np.testing.assert_allclose(qpos, clips.qpos[frames], atol=1e-6)
    np.testing.assert_allclose(states.data.qvel, clips.qvel[frames], atol=1e-6)
    np.testing.assert_allclose(states.info.phase, clips.phase[frames], atol=1e-6)
    joints = clips.qpos[frames][:, env.ids.qpos]
    reach = config.action_scale
    want = np.clip(env.home_joints + np.clip(joints - env.home_joints, -reach, reach),
                   env.joint_lo, env.joint_hi)  # fmt: skip
    np.testing.assert_allclose(states.data.ctrl[:, env.ids.actuators], want, atol=1e-5)
    # The filter and the delay line hold that action too, and the policy sees it as its last.
    action = np.clip((joints - env.home_joints) / reach, -1, 1)
    for held in (
        states.info.filtered_action,
        states.info.last_action,
        states.info.action_buffer[:, -1],
    ):
        np.testing.assert_allclose(held, action, atol=1e-5)
    assert len(set(frames)) > 4  # random frames, not one
    assert (np.asarray(states.obs)[:, :3] != np.asarray(states.obs)[0, :3]).any()


def test_cli_smoke_run(tmp_path):
    """`python amp.py` on the tiny config: trains, prints the discriminator's numbers, writes a
    policy that ppo.load_policy (and so play.py and export.py) runs."""
    run_dir = tmp_path / "amp"
    cmd = [sys.executable, "amp.py", "--config", "configs/smoke_amp.toml", "--run-dir",
           str(run_dir)]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    for name in ("amp/accuracy", "amp/d_reference", "amp/d_policy", "amp/grad_penalty",
                 "amp/style_reward", "amp/task_reward"):  # fmt: skip
        assert name in out.stdout, name
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["update"] for r in records] == [1, 2, 3]
    assert 0.0 <= records[-1]["amp/style_reward"] <= 1.0
    env_config, policy = ppo.load_policy(str(run_dir / "policy.msgpack"))
    action = policy(jnp.zeros(38))
    assert action.shape == (9,) and bool(jnp.all(jnp.abs(action) <= 1.0))
