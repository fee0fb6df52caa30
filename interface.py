"""The environment interface the learners rely on: a `State` pytree and the `Env` protocol.

Any environment with these members trains with `ppo.py` through `wrappers.VecEnv`, MuJoCo or not
(`env.WildRobotEnv` is one; `tests/probe_envs.py` holds physics-free ones). Both functions are pure
and traceable, so the learner can `jax.vmap` them over envs and `jax.jit` the whole loop. This file
imports nothing of the project's.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
from flax import struct


@struct.dataclass
class State:
    """One env's state after reset or step; VecEnv adds a leading batch axis to every leaf."""

    data: Any  # the simulator's state (mjx.Data for WildRobot); any pytree
    obs: jax.Array  # (obs_size,) float32 actor observation: what the robot senses
    critic_obs: jax.Array  # (critic_obs_size,) float32 privileged observation for the critic
    reward: jax.Array  # () float32, the sum of `rewards`
    terminated: jax.Array  # () bool: the episode ended for good (fall, blow-up): no bootstrap
    truncated: jax.Array  # () bool: time limit, never together with terminated: bootstrap
    rewards: dict[str, jax.Array]  # () each named reward term of this step, already scaled
    metrics: dict[str, jax.Array]  # () diagnostics, averaged per step into the logs as env/<name>
    info: Any  # the task's own carry (commands, clocks, randomization, rng); any pytree


class Env(Protocol):
    """What `VecEnv` and the learners call; sizes are plain ints fixed at construction."""

    obs_size: int
    critic_obs_size: int
    action_size: int

    def reset(self, key: jax.Array) -> State:
        """A fresh episode from a PRNG key (fresh randomization too); reward 0, not done."""
        ...

    def step(self, state: State, action: jax.Array) -> State:
        """One control step with an action in [-1, 1]^action_size (the env clips)."""
        ...

    # Optional, for ppo.py's symmetry_coef: mirror() -> (obs_size x obs_size, action_size x
    # action_size) matrices reflecting an actor observation and an action left-right.
