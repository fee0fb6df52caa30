"""Adversarial Motion Priors: PPO plus a discriminator that pays the policy for moving like a clip.

`make_train(config)` returns pure `init`, `train_chunk` and `train` like `ppo.make_train`; one
update is, inside one compiled `lax.scan`: a rollout that records the motion features of every
transition, the style reward of those transitions under the current discriminator, the
discriminator's own update (reference clips vs this rollout and a replay of past ones), then
`ppo.learn` on task reward + style reward. Everything PPO (networks, GAE, losses, optimizer, the
chunk driver, checkpoints, the command line) is `ppo.py`'s, by import.

    python amp.py                        # WildRobot, data/ clips: configs/wildrobot_amp.toml
    python amp.py --config configs/smoke_amp.toml amp.style_weight=1.0
    python amp.py --resume runs/wildrobot_amp-20261126-150000

Reference: Peng et al., "AMP: Adversarial Motion Priors for Stylized Physics-Based Character
Control" (2021): least-squares GAN targets, a gradient penalty on reference samples, the style
reward max(0, 1 - 0.25 (d - 1)^2).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

import driver
import ppo
from config import bounded, file_path, one_of
from interface import State
from wrappers import RunningStats, normalize, normalizer_init, normalizer_update

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(ROOT, "configs", "wildrobot_amp.toml")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AMPSettings:
    """The discriminator, its data and the reward mix ([amp] in a config file)."""

    motion: str = file_path("data")  # a clip (.npz), or a folder of clips (data/README.md)
    disc_hidden: tuple[int, ...] = bounded((256, 256), ge=1)
    disc_activation: str = one_of("relu", ppo.ACTIVATIONS)
    disc_learning_rate: float = bounded(1e-4, gt=0)  # AdamW
    disc_weight_decay: float = bounded(1e-4, ge=0)  # decoupled, on every parameter
    disc_steps: int = bounded(4, ge=1)  # discriminator gradient steps per PPO update
    disc_batch_size: int = bounded(2048, ge=2)  # per step: this many reference, as many policy
    grad_penalty: float = bounded(5.0, ge=0)  # weight of E ||dD/dx||^2 at reference inputs x
    replay_size: int = bounded(65_536, ge=1)  # past policy transitions kept (circular)
    replay_fraction: float = bounded(0.5, ge=0, le=1)  # of the policy samples, from the replay
    style_scale: float = bounded(0.04, ge=0)  # style reward per step when D says "reference"
    style_weight: float = bounded(0.5, ge=0)  # reward = task_weight * task + style_weight * style
    task_weight: float = bounded(1.0, ge=0)
    reference_init: float = bounded(0.2, ge=0, le=1)  # share of episodes that start from a clip


@dataclasses.dataclass(frozen=True)
class AMPConfig(ppo.PPOConfig):
    """PPOConfig plus the [amp] section."""

    name: str = "wildrobot_amp"
    amp: AMPSettings = AMPSettings()


def load_config(path: str | None = None, overrides: Any = ()) -> AMPConfig:
    """AMPConfig from a file plus `key=value` overrides, as ppo.load_config."""
    return ppo.load_config(path, overrides, cls=AMPConfig)


# ---------------------------------------------------------------------------------------------
# The discriminator and its math
# ---------------------------------------------------------------------------------------------


class Discriminator(nn.Module):
    """MLP on a normalized transition (s, s') of motion features -> one unbounded score."""

    hidden: tuple[int, ...]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = ppo.hidden_layers(x, self.hidden, self.activation)
        return nn.Dense(1, name="score")(x)[..., 0]


def disc_input(stats: RunningStats, pairs: jax.Array) -> jax.Array:
    """(..., 2, F) raw feature pairs -> (..., 2F) normalized input, the one the loss sees."""
    x = normalize(stats, pairs)
    return x.reshape(x.shape[:-2] + (-1,))


def lsgan_loss(d_reference: jax.Array, d_policy: jax.Array) -> jax.Array:
    """Least-squares GAN: reference scores towards +1, policy scores towards -1."""
    return 0.5 * jnp.mean((d_reference - 1.0) ** 2) + 0.5 * jnp.mean((d_policy + 1.0) ** 2)


def gradient_penalty(score: Any, x: jax.Array) -> jax.Array:
    """E ||d score / d x||^2 over the batch x: taken at the normalized reference inputs."""
    grads = jax.vmap(jax.grad(score))(x)
    return jnp.mean(jnp.sum(grads**2, axis=-1))


def style_reward(d: jax.Array) -> jax.Array:
    """max(0, 1 - 0.25 (d - 1)^2): 1 at d = 1 ("reference"), 0 from d = -1 ("policy") down."""
    return jnp.maximum(0.0, 1.0 - 0.25 * (d - 1.0) ** 2)


def accuracy(d_reference: jax.Array, d_policy: jax.Array) -> jax.Array:
    """Share of samples on the right side of 0 (reference > 0, policy < 0)."""
    return 0.5 * (jnp.mean(d_reference > 0) + jnp.mean(d_policy < 0))


def disc_loss(
    params: Any,
    disc: Discriminator,
    stats: RunningStats,
    reference_pairs: jax.Array,
    policy_pairs: jax.Array,
    grad_penalty: float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """LSGAN loss + grad_penalty * E ||dD/dx||^2 on raw pairs (n, 2, F) of both sources."""
    score = lambda x: disc.apply(params, x)  # noqa: E731
    x_reference = disc_input(stats, reference_pairs)
    d_reference, d_policy = score(x_reference), score(disc_input(stats, policy_pairs))
    # The penalty is taken with respect to the normalized reference input: the very input the
    # least-squares loss scores (not the raw features, not a policy or interpolated sample).
    penalty = gradient_penalty(score, x_reference)
    loss = lsgan_loss(d_reference, d_policy) + grad_penalty * penalty
    return loss, {
        "amp/d_reference": d_reference.mean(),
        "amp/d_policy": d_policy.mean(),
        "amp/grad_penalty": penalty,
        "amp/accuracy": accuracy(d_reference, d_policy),
        "amp/disc_loss": loss,
    }


@struct.dataclass
class Replay:
    """A fixed-size circular buffer of raw policy transitions."""

    pairs: jax.Array  # (size, 2, F)
    added: jax.Array  # () int32, transitions added so far; the next goes to added % size


def replay_init(size: int, features: int) -> Replay:
    """An empty buffer of `size` transitions of `features` per frame."""
    return Replay(jnp.zeros((size, 2, features)), jnp.zeros((), jnp.int32))


def replay_add(replay: Replay, pairs: jax.Array) -> Replay:
    """Write pairs (n, 2, F) over the oldest entries (n may exceed the size: the last ones win)."""
    size, n = replay.pairs.shape[0], pairs.shape[0]
    keep = min(n, size)
    slots = (replay.added + n - keep + jnp.arange(keep)) % size
    return Replay(replay.pairs.at[slots].set(pairs[n - keep :]), replay.added + n)


def replay_sample(replay: Replay, key: jax.Array, n: int) -> jax.Array:
    """n pairs drawn uniformly (with replacement) from the filled part of the buffer."""
    filled = jnp.clip(replay.added, 1, replay.pairs.shape[0])
    return replay.pairs[jax.random.randint(key, (n,), 0, filled)]


# ---------------------------------------------------------------------------------------------
# Reference state initialization
# ---------------------------------------------------------------------------------------------


class ReferenceInit:
    """An env whose reset starts a share of episodes from a random reference frame.

    Everything else is the wrapped env's (an interface.Env); VecEnv's auto-reset calls this reset,
    so every episode, not only the first, may start on a clip.
    """

    def __init__(self, env: Any, starts: Any, phases: jax.Array | None, share: float):
        self.env, self.starts, self.share = env, starts, share
        self.phases = None if phases is None else jnp.asarray(phases, jnp.float32)
        self.obs_size = env.obs_size
        self.critic_obs_size = env.critic_obs_size
        self.action_size = env.action_size
        self.num_frames = jax.tree.leaves(starts)[0].shape[0]
        # What VecEnv asks of the physics (MuJoCo Warp: each device steps its own envs).
        self.steps_per_device = getattr(env, "steps_per_device", False)
        self.check_batch = getattr(env, "check_batch", None)

    def reset(self, key: jax.Array) -> State:
        k_use, k_frame, k_phase, key = jax.random.split(key, 4)
        frame = jax.random.randint(k_frame, (), 0, self.num_frames)
        use = jax.random.uniform(k_use) < self.share
        data = jax.tree.map(
            lambda ref, home: jnp.where(use, ref[frame], home), self.starts, self.env.home_data
        )
        phase = jax.random.uniform(k_phase, (), jnp.float32, 0.0, 2 * jnp.pi)
        if self.phases is not None:
            phase = jnp.where(use, self.phases[frame], phase)
        return self.env.reset_to(key, data, phase)

    def step(self, state: State, action: jax.Array) -> State:
        return self.env.step(state, action)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@struct.dataclass
class AMPState:
    """PPO's train state plus the discriminator's; the driver reads it like a ppo.TrainState."""

    ppo: ppo.TrainState
    disc_params: Any
    disc_opt_state: optax.OptState
    amp_norm: RunningStats  # raw per-frame motion features, reference and policy alike
    replay: Replay

    @property
    def params(self) -> ppo.Params:
        return self.ppo.params

    @property
    def actor_norm(self) -> RunningStats:
        return self.ppo.actor_norm

    @property
    def update(self) -> jax.Array:
        return self.ppo.update


class Reference(NamedTuple):
    """Reference transitions as raw motion features, and where episodes may start."""

    pairs: jax.Array  # (P, 2, F)
    starts: Any  # stacked mjx.Data, one per frame
    phases: jax.Array | None  # (frames,) gait clock at each frame, if the clips say


def load_reference(config: AMPConfig, env: Any) -> Reference:
    """The configured clips: feature pairs for the discriminator, frames for episode starts."""
    # Local imports: the clip loader needs MuJoCo, which make_train on other envs never loads.
    import motion as motion_lib  # noqa: PLC0415
    from robot import resolve_path  # noqa: PLC0415

    clips = motion_lib.load_motion(resolve_path(config.amp.motion), config.env)
    features = motion_lib.motion_features(env, clips)
    s, s_next = motion_lib.transitions(clips, features)
    phases = clips.phase
    return Reference(
        pairs=jnp.asarray(np.stack([s, s_next], axis=1), jnp.float32),
        starts=env.forward_states(clips.qpos, clips.qvel),
        phases=None if phases is None else jnp.asarray(phases, jnp.float32),
    )


def make_train(config: AMPConfig, env: Any = None, reference: Reference | None = None):
    """Pure `init`, `train_chunk` and `train` (a ppo.Trainer) for an env with amp_features."""
    base = ppo.default_env(config.env) if env is None else env
    reference = load_reference(config, base) if reference is None else reference
    a = config.amp
    features = lambda s: base.amp_features(s.data.qpos, s.data.qvel)  # noqa: E731
    starts_env = ReferenceInit(base, reference.starts, reference.phases, a.reference_init)
    nets = ppo.make_nets(config, starts_env, observe_final=features)
    num_features = reference.pairs.shape[-1]
    disc = Discriminator(a.disc_hidden, a.disc_activation)
    disc_optimizer = optax.adamw(a.disc_learning_rate, weight_decay=a.disc_weight_decay)
    policy_batch = a.disc_batch_size
    from_replay = round(a.replay_fraction * policy_batch)

    def init(key: jax.Array) -> AMPState:
        k_ppo, k_disc = jax.random.split(key)
        disc_params = disc.init(k_disc, jnp.zeros(2 * num_features))
        state = AMPState(
            ppo=ppo.init_state(k_ppo, nets),
            disc_params=disc_params,
            disc_opt_state=disc_optimizer.init(disc_params),
            amp_norm=normalizer_init(num_features),
            replay=replay_init(a.replay_size, num_features),
        )
        return jax.tree.map(lambda x: jnp.asarray(x, x.dtype), state)

    def observe(before: Any, after: Any) -> jax.Array:
        """(num_envs, 2, F): features of the state a step started in and of the one it reached."""
        return jnp.stack([jax.vmap(features)(before.env), after.final_extra], axis=1)

    def train_discriminator(state: AMPState, pairs: jax.Array, key: jax.Array):
        """The normalizer takes in raw features of both sources, then disc_steps AdamW steps."""
        k_norm, k_steps = jax.random.split(key)
        reference_sample = reference.pairs[
            jax.random.randint(k_norm, (pairs.shape[0],), 0, reference.pairs.shape[0])
        ]
        raw = jnp.concatenate([pairs, reference_sample]).reshape(-1, num_features)
        stats = normalizer_update(state.amp_norm, raw)

        def step(carry, key):
            params, opt_state = carry
            k_ref, k_new, k_old = jax.random.split(key, 3)
            new = pairs[jax.random.randint(k_new, (policy_batch - from_replay,), 0, len(pairs))]
            old = replay_sample(state.replay, k_old, from_replay)
            policy = jnp.concatenate([new, old])
            ref = reference.pairs[
                jax.random.randint(k_ref, (policy_batch,), 0, reference.pairs.shape[0])
            ]
            grads, metrics = jax.grad(disc_loss, has_aux=True)(
                params, disc, stats, ref, policy, a.grad_penalty
            )
            updates, opt_state = disc_optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), metrics

        keys = jax.random.split(k_steps, a.disc_steps)
        (params, opt_state), metrics = jax.lax.scan(
            step, (state.disc_params, state.disc_opt_state), keys
        )
        state = state.replace(
            disc_params=params,
            disc_opt_state=opt_state,
            amp_norm=stats,
            replay=replay_add(state.replay, pairs),
        )
        return state, {k: v.mean() for k, v in metrics.items()}

    def update(state: AMPState, _) -> tuple[AMPState, dict[str, jax.Array]]:
        ppo_state, traj = ppo.rollout(
            nets.venv, nets.actor, state.ppo, config.unroll_length, observe
        )
        pairs = traj.extra.reshape(-1, 2, num_features)
        # -- style reward from the discriminator the state holds now (never a stale copy) -----
        d = disc.apply(state.disc_params, disc_input(state.amp_norm, pairs))
        style = style_reward(jax.lax.stop_gradient(d)).reshape(traj.reward.shape)
        task = traj.reward
        traj = traj.replace(reward=a.task_weight * task + a.style_weight * a.style_scale * style)
        # -- the discriminator learns from this rollout, then PPO from the mixed reward -------
        key, k_disc = jax.random.split(ppo_state.key)
        state, disc_metrics = train_discriminator(state.replace(ppo=ppo_state), pairs, k_disc)
        ppo_state, metrics = ppo.learn(state.ppo.replace(key=key), traj, nets, config)
        metrics |= disc_metrics
        metrics["amp/style_reward"] = style.mean()
        metrics["amp/task_reward"] = task.mean()
        return state.replace(ppo=ppo_state), metrics

    def train_chunk(state: AMPState) -> tuple[AMPState, dict[str, jax.Array]]:
        return jax.lax.scan(update, state, None, config.updates_per_chunk)

    def train(key: jax.Array) -> tuple[AMPState, dict[str, jax.Array]]:
        return jax.lax.scan(update, init(key), None, config.num_updates)

    return ppo.Trainer(init, train_chunk, train, base, nets.actor, nets.critic)


# ---------------------------------------------------------------------------------------------
# The command line (driver.py): `python amp.py`
# ---------------------------------------------------------------------------------------------


class Prepared(NamedTuple):
    env: Any
    reference: Reference


def prepare(config: AMPConfig) -> Prepared:
    """The robot and its reference clips, loaded and checked before a run directory exists."""
    env = ppo.default_env(config.env)
    return Prepared(env, load_reference(config, env))


LEARNER = driver.Learner(
    script="amp.py",
    description=__doc__.split("\n")[0],
    default_config=DEFAULT_CONFIG,
    load_config=load_config,
    prepare=prepare,
    make_train=lambda config, prepared: make_train(config, *(prepared or ())),
    panels=["episode/return", "episode/length", "reward/", "amp/style_reward", "amp/accuracy",
            "amp/d_reference", "amp/d_policy", "amp/grad_penalty", "loss/value", "policy/std"],
    groups=("amp/",),
)  # fmt: skip


def run(config: AMPConfig, run_dir: str, prepared: Prepared | None = None, **kwargs: Any) -> Any:
    """driver.run with AMP (resume, stop_after, profile as there)."""
    return driver.run(LEARNER, config, run_dir, prepared, **kwargs)


def main(argv: list[str] | None = None) -> None:
    driver.main(LEARNER, argv)


if __name__ == "__main__":
    main()
