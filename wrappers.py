"""Batched environment with auto-reset and episode statistics, and a running observation normalizer.

`VecEnv(env, num_envs)` vmaps any `interface.Env` (`reset(key)` / `step(state, action)` returning an
`interface.State`). When an episode ends it calls the real `reset` with a fresh key (fresh
randomization, never a cached first state) and keeps the finished episode's last observations for
bootstrapping. The normalizer is a pure pytree (`RunningStats`) that a train state carries and a
checkpoint saves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from interface import State


@struct.dataclass
class EpisodeStats:
    """Per-env sums over the current episode; `done_*` hold those of episodes that just ended."""

    episode_return: jax.Array  # (num_envs,)
    episode_length: jax.Array  # (num_envs,) int32
    term_sums: dict[str, jax.Array]  # reward term -> (num_envs,)
    done_return: jax.Array  # (num_envs,) return of the episode that ended this step, else 0
    done_length: jax.Array  # (num_envs,)
    done_term_sums: dict[str, jax.Array]


@struct.dataclass
class VecState:
    """The batched env state after auto-reset, plus what the learner needs of the finished step."""

    env: State  # batched; where an episode ended this is already the new episode's first state
    final_obs: jax.Array  # (num_envs, obs) observation at the end of this step, before any reset
    final_critic_obs: jax.Array  # (num_envs, critic_obs) the same for the critic (bootstrapping)
    stats: EpisodeStats
    key: jax.Array  # for reset keys
    final_extra: Any = None  # VecEnv's `observe_final` of the state this step reached


class VecEnv:
    """vmap over `num_envs` copies of `env` with auto-reset and episode statistics.

    `observe_final(state)`, if given, is recorded of every env's state before any reset (in
    VecState.final_extra), for learners that need more of it than the observations (e.g. AMP's
    motion features of the state an episode ended in).
    """

    def __init__(
        self, env: Any, num_envs: int, observe_final: Callable[[State], Any] | None = None
    ):
        self.env = env
        self.num_envs = num_envs
        self.observe_final = observe_final
        self.obs_size = env.obs_size
        self.critic_obs_size = env.critic_obs_size
        self.action_size = env.action_size

    def reset(self, key: jax.Array) -> VecState:
        key, reset_key = jax.random.split(key)
        state = jax.vmap(self.env.reset)(jax.random.split(reset_key, self.num_envs))
        # Fresh arrays for every leaf (no two leaves share a buffer), so the state can be donated.
        zeros = lambda dtype=jnp.float32: jnp.zeros(self.num_envs, dtype)  # noqa: E731
        stats = EpisodeStats(
            episode_return=zeros(),
            episode_length=zeros(jnp.int32),
            term_sums={k: zeros() for k in state.rewards},
            done_return=zeros(),
            done_length=zeros(jnp.int32),
            done_term_sums={k: zeros() for k in state.rewards},
        )
        return VecState(
            env=state,
            final_obs=jnp.copy(state.obs),
            final_critic_obs=jnp.copy(state.critic_obs),
            stats=stats,
            key=key,
            final_extra=self._observe_final(state),
        )

    def _observe_final(self, state: State) -> Any:
        return None if self.observe_final is None else jax.vmap(self.observe_final)(state)

    def step(self, vstate: VecState, action: jax.Array) -> VecState:
        step, devices = jax.vmap(self.env.step), 1
        if getattr(self.env, "steps_per_device", False):
            step, devices = per_device(step), mesh_size()
        if check_batch := getattr(self.env, "check_batch", None):  # e.g. buffers sized per device
            check_batch(self.num_envs, devices)
        state = step(vstate.env, action)
        done = state.terminated | state.truncated

        # -- episode statistics -------------------------------------------------------------
        s = vstate.stats
        ret = s.episode_return + state.reward
        length = s.episode_length + 1
        sums = {k: s.term_sums[k] + state.rewards[k] for k in s.term_sums}
        stats = EpisodeStats(
            episode_return=jnp.where(done, 0.0, ret),
            episode_length=jnp.where(done, 0, length),
            term_sums={k: jnp.where(done, 0.0, v) for k, v in sums.items()},
            done_return=jnp.where(done, ret, 0.0),
            done_length=jnp.where(done, length, 0),
            done_term_sums={k: jnp.where(done, v, 0.0) for k, v in sums.items()},
        )

        # -- auto-reset with fresh keys; this step's outcome stays visible ------------------
        key, reset_key = jax.random.split(vstate.key)
        fresh = jax.vmap(self.env.reset)(jax.random.split(reset_key, self.num_envs))
        merged = _where_done(done, fresh, state)
        merged = merged.replace(
            reward=state.reward,
            terminated=state.terminated,
            truncated=state.truncated,
            rewards=state.rewards,
            metrics=state.metrics,
        )
        return VecState(
            env=merged,
            final_obs=state.obs,
            final_critic_obs=state.critic_obs,
            stats=stats,
            key=key,
            final_extra=self._observe_final(state),
        )


def mesh_size() -> int:
    """Devices of the mesh that `jax.set_mesh` set (1 without one)."""
    mesh = jax.sharding.get_abstract_mesh()
    return 1 if mesh.empty else mesh.size


def per_device(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` of env-batched pytrees, run by each device on its own envs (`jax.shard_map` over the
    mesh that `jax.set_mesh` set, every argument and result split on its leading axis); `fn`
    itself without a mesh of several devices.

    For an env whose step is one call over the whole batch that XLA cannot split (MuJoCo Warp's
    FFI call): under `jit` with the envs sharded, each device then steps its own envs.
    """

    def run(*args: Any) -> Any:
        if mesh_size() == 1:
            return fn(*args)
        spec = jax.sharding.PartitionSpec(jax.sharding.get_abstract_mesh().axis_names)
        return jax.shard_map(fn, in_specs=spec, out_specs=spec, check_vma=False)(*args)

    return run


def _where_done(done: jax.Array, fresh: Any, current: Any) -> Any:
    """Per env, pick `fresh` where done else `current`, for every leaf of a batched pytree."""

    def pick(a, b):
        return jnp.where(done.reshape(done.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, fresh, current)


# ---------------------------------------------------------------------------------------------
# Running observation normalization (parallel Welford / Chan et al.)
# ---------------------------------------------------------------------------------------------


@struct.dataclass
class RunningStats:
    """Count, mean and sum of squared deviations of everything seen so far."""

    count: jax.Array  # ()
    mean: jax.Array  # (size,)
    m2: jax.Array  # (size,)

    @property
    def std(self) -> jax.Array:
        return jnp.sqrt(self.m2 / jnp.maximum(self.count, 1.0))


def normalizer_init(size: int) -> RunningStats:
    """Statistics of nothing: normalize() is then the identity (mean 0, std floor 1)."""
    return RunningStats(jnp.zeros(()), jnp.zeros(size), jnp.zeros(size))


def normalizer_update(stats: RunningStats, batch: jax.Array) -> RunningStats:
    """Merge a batch (..., size) into the statistics; exact for any batch split (Chan's formula)."""
    x = batch.reshape(-1, batch.shape[-1]).astype(jnp.float32)
    n = jnp.asarray(x.shape[0], jnp.float32)
    mean = x.mean(axis=0)
    m2 = jnp.sum((x - mean) ** 2, axis=0)
    total = stats.count + n
    delta = mean - stats.mean
    return RunningStats(
        count=total,
        mean=stats.mean + delta * n / total,
        m2=stats.m2 + m2 + delta**2 * stats.count * n / total,
    )


# Below this standard deviation a dimension counts as constant. A command input that never
# varied in training (spread exactly 0, or float round-off of ~1e-8) must pass through unscaled:
# dividing by a tiny floor would turn a 0.001 deviation on the robot into an input of 10 or more.
MIN_STD = 1e-3


def normalizer_scale(stats: RunningStats) -> jax.Array:
    """The divisor of each dimension: its std, or 1 where it did not vary (or before any data).

    The one rule every consumer uses: training (normalize), export.py's NumPy file and its ONNX
    graph, so deploy.py divides by the same numbers.
    """
    return jnp.where((stats.count > 1) & (stats.std >= MIN_STD), stats.std, 1.0)


def normalize(stats: RunningStats, x: jax.Array, clip: float = 10.0) -> jax.Array:
    """(x - mean) / scale, clipped; dimensions that never varied are only shifted."""
    return jnp.clip((x - stats.mean) / normalizer_scale(stats), -clip, clip)
