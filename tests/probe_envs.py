"""Tiny pure-JAX environments with known answers, for testing PPO without physics.

Each is an `interface.Env`: `reset(key) -> State`, `step(state, action) -> State` (`info` is a small
pytree) and `obs_size`, `critic_obs_size`, `action_size`, like WildRobotEnv. Each probe isolates one
piece of the learner: a value that must learn a constant, a policy that must find the rewarded
action, discounting across steps, and bootstrapping on truncation; PointMass needs real learning."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from interface import State


def _state(obs, reward, terminated, truncated, info, critic_obs=None) -> State:
    reward = jnp.asarray(reward, jnp.float32)
    return State(
        data=jnp.zeros(()),
        obs=obs,
        critic_obs=obs if critic_obs is None else critic_obs,
        reward=reward,
        terminated=jnp.asarray(terminated, bool),
        truncated=jnp.asarray(truncated, bool),
        rewards={"main": reward},
        metrics={},
        info=info,
    )


class ConstantReward:
    """One-step episodes with reward 1 that terminate: the value of the only observation is 1."""

    obs_size = critic_obs_size = action_size = 1

    def reset(self, key: jax.Array) -> State:
        return _state(jnp.ones(1), 0.0, False, False, jnp.zeros((), jnp.int32))

    def step(self, state: State, action: jax.Array) -> State:
        return _state(jnp.ones(1), 1.0, True, False, state.info + 1)


class RewardedAction:
    """One-step episodes rewarding actions near `target`: the deterministic action must find it."""

    obs_size = critic_obs_size = action_size = 1
    target = 0.5

    def reset(self, key: jax.Array) -> State:
        return _state(jnp.ones(1), 0.0, False, False, jnp.zeros((), jnp.int32))

    def step(self, state: State, action: jax.Array) -> State:
        reward = 1.0 - 4.0 * (jnp.clip(action[0], -1.0, 1.0) - self.target) ** 2
        return _state(jnp.ones(1), reward, True, False, state.info + 1)


class Discounting:
    """Two-step episodes, reward 1 on the second then terminated: V(obs 0) = gamma, V(obs 1) = 1."""

    obs_size = critic_obs_size = action_size = 1

    def reset(self, key: jax.Array) -> State:
        return _state(jnp.zeros(1), 0.0, False, False, jnp.zeros((), jnp.int32))

    def step(self, state: State, action: jax.Array) -> State:
        step = state.info + 1
        last = step == 2
        return _state(jnp.ones(1) * step, last.astype(jnp.float32), last, False, step)


class TruncatedForever:
    """Reward 1 every step; every step hits the time limit (truncated, never terminated).

    The task itself never ends, so the value is 1 / (1 - gamma); a learner that zeroed the
    bootstrap on truncation would find 1.
    """

    obs_size = critic_obs_size = action_size = 1

    def reset(self, key: jax.Array) -> State:
        return _state(jnp.ones(1), 0.0, False, False, jnp.zeros((), jnp.int32))

    def step(self, state: State, action: jax.Array) -> State:
        return _state(jnp.ones(1), 1.0, False, True, state.info + 1)


class PointMass:
    """Steer a point to a random goal in the plane: a cheap task that needs real learning.

    obs: position (2), goal (2); critic_obs adds goal - position (2). action: velocity in [-1, 1]^2
    times `speed`. Reward: minus the distance to the goal per step. Leaving the box of half-width
    1.5 terminates; 30 steps truncate. A random policy returns about -30, a good one about -5.
    """

    obs_size, critic_obs_size, action_size = 4, 6, 2
    speed = 0.1
    episode_length = 30

    def _observe(self, pos, goal, reward, terminated, truncated, info) -> State:
        obs = jnp.concatenate([pos, goal])
        critic_obs = jnp.concatenate([obs, goal - pos])
        return _state(obs, reward, terminated, truncated, info, critic_obs)

    def reset(self, key: jax.Array) -> State:
        k_pos, k_goal = jax.random.split(key)
        pos = jax.random.uniform(k_pos, (2,), jnp.float32, -1.0, 1.0)
        goal = jax.random.uniform(k_goal, (2,), jnp.float32, -1.0, 1.0)
        info = {"pos": pos, "goal": goal, "step": jnp.zeros((), jnp.int32)}
        return self._observe(pos, goal, 0.0, False, False, info)

    def step(self, state: State, action: jax.Array) -> State:
        info = state.info
        pos = info["pos"] + self.speed * jnp.clip(action, -1.0, 1.0)
        step = info["step"] + 1
        terminated = jnp.abs(pos).max() > 1.5
        truncated = (step >= self.episode_length) & ~terminated
        reward = -jnp.linalg.norm(info["goal"] - pos)
        info = {"pos": pos, "goal": info["goal"], "step": step}
        return self._observe(pos, info["goal"], reward, terminated, truncated, info)
