"""Tiny pure-JAX environments with known answers, for testing PPO without physics.

Each is an `interface.Env`: `reset(key) -> State`, `step(state, action) -> State` (`info` is a small
pytree) and `obs_size`, `critic_obs_size`, `action_size`, like WildRobotEnv. Each probe isolates one
piece of the learner: a value that must learn a constant, a policy that must find the rewarded
action, discounting across steps, and bootstrapping on truncation; PointMass needs real learning."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

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


class MirroredPointMass(PointMass):
    """PointMass with its left-right reflection (y -> -y) for a symmetry loss."""

    def mirror(self) -> tuple[np.ndarray, np.ndarray]:
        return np.diag([1.0, -1.0, 1.0, -1.0]), np.diag([1.0, -1.0])


class TruncatedAfterTwo:
    """Reset at obs 0; every step leads to obs 1 and pays the current obs (0, then 1); length 2.

    The task goes on forever at obs 1, so V(1) = 1 / (1 - gamma) and V(0) = gamma V(1). Truncation
    must bootstrap from the observation the episode reached (1), not from the reset observation
    (0) the wrapper already replaced it with: that would give V(1) = 1 / (1 - gamma^2).
    """

    obs_size = critic_obs_size = action_size = 1

    def reset(self, key: jax.Array) -> State:
        return _state(jnp.zeros(1), 0.0, False, False, jnp.zeros((), jnp.int32))

    def step(self, state: State, action: jax.Array) -> State:
        step = state.info + 1
        return _state(jnp.ones(1), state.obs[0], False, step >= 2, step)


class RandomStart:
    """Episodes of 2 steps from a random observation (drawn from the reset key), reward 1 a step."""

    obs_size = critic_obs_size = action_size = 1

    def reset(self, key: jax.Array) -> State:
        obs = jax.random.uniform(key, (1,))
        return _state(obs, 0.0, False, False, jnp.zeros((), jnp.int32))

    def step(self, state: State, action: jax.Array) -> State:
        step = state.info + 1
        return _state(state.obs, 1.0, step >= 2, False, step)


@struct.dataclass
class PointData:
    qpos: jax.Array  # (1,)
    qvel: jax.Array  # (1,)


class MotionProbe:
    """A point on a line with AMP's hooks: motion features, reset_to a given state.

    The action sets the velocity (0.1 per unit); reward -|position|; 20 steps truncate. The motion
    features of a state are (qpos, qvel), so a discriminator can tell a policy's motion from a
    reference one.
    """

    obs_size = critic_obs_size = 2
    action_size = 1
    amp_feature_size = 2
    home_data = PointData(jnp.zeros(1), jnp.zeros(1))

    def amp_features(self, qpos: jax.Array, qvel: jax.Array) -> jax.Array:
        return jnp.concatenate([qpos, qvel])

    def forward_states(self, qpos, qvel) -> PointData:
        return PointData(jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32))

    def _state(self, data: PointData, reward, truncated, step) -> State:
        obs = jnp.concatenate([data.qpos, data.qvel])
        return _state(obs, reward, False, truncated, step).replace(data=data)

    def reset(self, key: jax.Array) -> State:
        return self.reset_to(key, self.home_data)

    def reset_to(self, key: jax.Array, data: PointData, phase=None) -> State:
        return self._state(data, 0.0, False, jnp.zeros((), jnp.int32))

    def step(self, state: State, action: jax.Array) -> State:
        qvel = jnp.clip(action, -1.0, 1.0) * 0.1
        data = PointData(state.data.qpos + qvel, qvel)
        step = state.info + 1
        return self._state(data, -jnp.abs(data.qpos[0]), step >= 20, step)
