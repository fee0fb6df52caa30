"""PPO for pure-JAX environments: rollout, advantages and every update compiled as one program.

`make_train(config)` returns pure functions: `init(key) -> TrainState`, `train_chunk(state)` (a
`lax.scan` of `updates_per_chunk` updates) and `train(key)` (init + all updates, one program;
`jax.jit(jax.vmap(train))(keys)` trains several seeds at once). The command line drives the chunks
and writes a run directory: config, metrics (JSONL + TensorBoard), checkpoints, learning curves.

    python ppo.py                              # WildRobot walking: configs/wildrobot_walk.toml
    python ppo.py --config configs/smoke.toml num_envs=8 env.noise.gyro=0.1
    python ppo.py --num-seeds 4 --profile      # four seeds in one program; a profiler trace
    python ppo.py --resume runs/wildrobot_walk-20250101-120000

A saved policy runs in a few lines: `env_config, policy = load_policy("runs/.../policy.msgpack")`,
then `action = policy(state.obs)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization, struct

import runs
from config import ConfigError, override, parse_overrides, read_file
from wrappers import (
    EpisodeStats,
    RunningStats,
    VecEnv,
    VecState,
    normalize,
    normalizer_init,
    normalizer_update,
)

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(ROOT, "configs", "wildrobot_walk.toml")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters and the environment they train; configs/*.toml may set any field."""

    name: str = "wildrobot_walk"  # run directory prefix
    seed: int = 0  # seed i of num_seeds trains from split(PRNGKey(seed), num_seeds)[i]
    num_seeds: int = 1  # independent runs trained side by side in one program (vmap)
    total_steps: int = 50_000_000  # env steps per seed, rounded up to whole chunks
    num_envs: int = 1024  # parallel environments per seed
    unroll_length: int = 32  # control steps per env per update
    num_epochs: int = 2  # passes over each rollout
    num_minibatches: int = 8  # per epoch; batch_size = num_envs * unroll_length
    learning_rate: float = 3e-4  # Adam
    anneal_lr: bool = False  # linearly to 0 over training
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2  # policy ratio clip, and value clip when clip_value_loss
    clip_value_loss: bool = False
    normalize_advantages: bool = True  # per minibatch
    value_coef: float = 0.5
    entropy_coef: float = 0.005
    max_grad_norm: float = 1.0  # global norm over actor and critic gradients
    actor_hidden: tuple[int, ...] = (128, 128)
    critic_hidden: tuple[int, ...] = (128, 128)
    activation: str = "elu"  # a key of ACTIVATIONS
    init_log_std: float = -0.5  # the policy's initial exploration noise (std = exp)
    updates_per_chunk: int = 5  # updates per jitted call: the cadence of logging
    checkpoint_every: int = 50  # updates between checkpoints (at chunk ends); always at the end
    env: Any = None  # the environment's own config dataclass ([env] in a file); see default_env

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.unroll_length

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_chunks(self) -> int:
        return max(1, math.ceil(self.total_steps / (self.batch_size * self.updates_per_chunk)))

    @property
    def num_updates(self) -> int:
        return self.num_chunks * self.updates_per_chunk


ACTIVATIONS = {"elu": nn.elu, "relu": nn.relu, "tanh": nn.tanh, "silu": nn.silu}


def check_config(config: PPOConfig) -> PPOConfig:
    """Raise ConfigError naming the first inconsistent field; return the config unchanged."""
    positive = ("num_seeds", "num_envs", "unroll_length", "num_epochs", "num_minibatches",
                "updates_per_chunk", "total_steps")  # fmt: skip
    for name in positive:
        if getattr(config, name) < 1:
            raise ConfigError(
                f"config key '{name}' must be at least 1, got {getattr(config, name)}"
            )
    if config.batch_size % config.num_minibatches:
        raise ConfigError(
            f"num_minibatches {config.num_minibatches} does not divide the batch of "
            f"num_envs * unroll_length = {config.batch_size}"
        )
    if config.activation not in ACTIVATIONS:
        raise ConfigError(f"activation '{config.activation}' is not one of {sorted(ACTIVATIONS)}")
    return config


def load_config(path: str | None = None, overrides: Any = (), env_config: Any = None) -> PPOConfig:
    """PPOConfig from a TOML/JSON file plus `key=value` strings (or a dict); names any bad key.

    `env_config` is the environment's default config that [env] / `env.<field>` values override;
    None means WildRobot's (see default_env).
    """
    config = PPOConfig(env=default_env_config() if env_config is None else env_config)
    if path:
        config = override(config, read_file(path))
    return check_config(override(config, parse_overrides(overrides)))


# ---------------------------------------------------------------------------------------------
# The environment this script trains by default
# ---------------------------------------------------------------------------------------------
# The only place this file names the robot. The imports are local, so that `make_train(config, env)`
# with any other environment (see interface.Env) never loads env.py or MuJoCo: copy this file with
# wrappers.py, runs.py, config.py and interface.py, and replace these two functions.


def default_env_config() -> Any:
    """WildRobot's EnvConfig defaults."""
    from env import EnvConfig  # noqa: PLC0415

    return EnvConfig()


def default_env(env_config: Any) -> Any:
    """WildRobot with `env_config`; model and names are checked here, before anything compiles."""
    from env import WildRobotEnv  # noqa: PLC0415

    return WildRobotEnv(env_config)


# ---------------------------------------------------------------------------------------------
# Networks and the action distribution
# ---------------------------------------------------------------------------------------------


def _hidden_layers(x: jax.Array, hidden: tuple[int, ...], activation: str) -> jax.Array:
    """Dense layers "hidden_<i>" of the calling module, each followed by the activation."""
    for i, width in enumerate(hidden):
        dense = nn.Dense(
            width, kernel_init=nn.initializers.orthogonal(math.sqrt(2)), name=f"hidden_{i}"
        )
        x = ACTIVATIONS[activation](dense(x))
    return x


class Actor(nn.Module):
    """Policy MLP: normalized actor observation -> Gaussian mean, plus a state-free log std.

    Params tree: {"params": {"hidden_0": {"kernel": (obs_size, h0), "bias": (h0,)}, ...,
    "hidden_<k-1>": ..., "mean": {"kernel": (h_last, action_size), "bias": (action_size,)},
    "log_std": (action_size,)}}. A hidden layer is activation(x @ kernel + bias); "mean" is linear.
    """

    hidden: tuple[int, ...]
    action_size: int
    activation: str = "elu"
    init_log_std: float = -0.5

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = _hidden_layers(obs, self.hidden, self.activation)
        mean = nn.Dense(self.action_size, kernel_init=nn.initializers.orthogonal(0.01), name="mean")
        log_std = self.param(
            "log_std", nn.initializers.constant(self.init_log_std), (self.action_size,)
        )
        return mean(x), jnp.broadcast_to(log_std, x.shape[:-1] + (self.action_size,))


class Critic(nn.Module):
    """Value MLP on the normalized privileged observation; layers "hidden_<i>" then "value"."""

    hidden: tuple[int, ...]
    activation: str = "elu"

    @nn.compact
    def __call__(self, critic_obs: jax.Array) -> jax.Array:
        x = _hidden_layers(critic_obs, self.hidden, self.activation)
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), name="value")
        return value(x)[..., 0]


def action_distribution(mean: jax.Array, log_std: jax.Array) -> distrax.MultivariateNormalDiag:
    """The policy: a diagonal Gaussian over unclipped actions (the environment clips to [-1, 1])."""
    # Clipped rather than tanh-squashed: the stored and scored action is the raw Gaussian draw and
    # the clip happens inside env.step, so log_prob is the exact density of what the policy chose
    # (no tanh Jacobian, no atanh of saturated actions) and entropy and KL have closed forms.
    # The deterministic action is clip(mean, -1, 1).
    return distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))


# ---------------------------------------------------------------------------------------------
# The math: advantages and loss pieces
# ---------------------------------------------------------------------------------------------


class Advantages(NamedTuple):
    advantages: jax.Array  # (T, N)
    returns: jax.Array  # (T, N) value targets: advantages + values


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float,
    lam: float,
) -> Advantages:
    """GAE over time-major (T, N) arrays.

    next_values[t] is the value of the observation step t reached, before any auto-reset: it is
    bootstrapped unless the episode terminated (so a truncated episode keeps its future), and the
    recursion never crosses an episode end.
    """
    alive = 1.0 - terminated.astype(jnp.float32)
    continues = 1.0 - (terminated | truncated).astype(jnp.float32)
    deltas = rewards + gamma * alive * next_values - values

    def backward(next_advantage, step):
        delta, cont = step
        advantage = delta + gamma * lam * cont * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(values[0]), (deltas, continues), reverse=True
    )
    return Advantages(advantages, advantages + values)


def normalize_advantages(advantages: jax.Array) -> jax.Array:
    """Zero mean, unit standard deviation (per minibatch)."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def policy_loss(
    log_prob: jax.Array, old_log_prob: jax.Array, advantages: jax.Array, clip_eps: float
) -> jax.Array:
    """Clipped surrogate objective, negated to a loss."""
    ratio = jnp.exp(log_prob - old_log_prob)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -jnp.mean(jnp.minimum(ratio * advantages, clipped * advantages))


def value_loss(
    values: jax.Array, old_values: jax.Array, returns: jax.Array, clip_eps: float, clip: bool
) -> jax.Array:
    """Half squared error to the returns; with `clip`, the max with the error of a clipped step."""
    loss = (values - returns) ** 2
    if clip:
        clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        loss = jnp.maximum(loss, (clipped - returns) ** 2)
    return 0.5 * jnp.mean(loss)


def approx_kl(log_prob: jax.Array, old_log_prob: jax.Array) -> jax.Array:
    """KL(old || new) estimated from samples of the old policy: mean of (r - 1) - log r."""
    log_ratio = log_prob - old_log_prob
    return jnp.mean(jnp.expm1(log_ratio) - log_ratio)


# ---------------------------------------------------------------------------------------------
# Carries
# ---------------------------------------------------------------------------------------------


@struct.dataclass
class Params:
    actor: Any  # Actor params tree
    critic: Any  # Critic params tree


@struct.dataclass
class TrainState:
    """Everything training carries from one update to the next (and a checkpoint saves)."""

    params: Params
    opt_state: optax.OptState
    actor_norm: RunningStats  # statistics of actor observations
    critic_norm: RunningStats  # statistics of critic observations
    env: VecState
    key: jax.Array  # raw uint32 key
    update: jax.Array  # () int32, updates done


@struct.dataclass
class Transition:
    """One control step of every env (leading axis num_envs; the rollout scan adds time)."""

    obs: jax.Array  # raw actor observation the action was chosen from
    critic_obs: jax.Array  # raw critic observation of the same state
    action: jax.Array  # unclipped Gaussian sample
    log_prob: jax.Array
    final_critic_obs: jax.Array  # raw critic observation this step reached, before any reset
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    episode: EpisodeStats  # done_* hold the sums of episodes that ended this step
    env_metrics: dict[str, jax.Array]


@struct.dataclass
class Batch:
    """Flattened training samples, observations already normalized."""

    obs: jax.Array
    critic_obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array


class SGDCarry(NamedTuple):
    params: Params
    opt_state: optax.OptState


class Trainer(NamedTuple):
    init: Callable[[jax.Array], TrainState]
    train_chunk: Callable[[TrainState], tuple[TrainState, dict[str, jax.Array]]]
    train: Callable[[jax.Array], tuple[TrainState, dict[str, jax.Array]]]
    env: Any
    actor: Actor
    critic: Critic


# ---------------------------------------------------------------------------------------------
# Rollout, loss, training
# ---------------------------------------------------------------------------------------------


def ppo_loss(
    params: Params, batch: Batch, actor: Actor, critic: Critic, config: PPOConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped policy loss + value_coef * value loss - entropy_coef * entropy, on one minibatch."""
    dist = action_distribution(*actor.apply(params.actor, batch.obs))
    log_prob = dist.log_prob(batch.action)
    advantages = batch.advantage
    if config.normalize_advantages:
        advantages = normalize_advantages(advantages)
    pi_loss = policy_loss(log_prob, batch.log_prob, advantages, config.clip_eps)
    values = critic.apply(params.critic, batch.critic_obs)
    v_loss = value_loss(values, batch.value, batch.target, config.clip_eps, config.clip_value_loss)
    entropy = dist.entropy().mean()
    total = pi_loss + config.value_coef * v_loss - config.entropy_coef * entropy
    return total, {
        "loss/total": total,
        "loss/policy": pi_loss,
        "loss/value": v_loss,
        "policy/entropy": entropy,
        "policy/approx_kl": approx_kl(log_prob, batch.log_prob),
        "policy/clip_fraction": jnp.mean(
            jnp.abs(jnp.exp(log_prob - batch.log_prob) - 1) > config.clip_eps
        ),
    }


def rollout(
    venv: VecEnv, actor: Actor, state: TrainState, length: int
) -> tuple[TrainState, Transition]:
    """Run the current policy `length` steps in every env; returns the advanced state and data."""

    def step(state: TrainState, _) -> tuple[TrainState, Transition]:
        key, k_action = jax.random.split(state.key)
        vstate = state.env
        obs = normalize(state.actor_norm, vstate.env.obs)
        dist = action_distribution(*actor.apply(state.params.actor, obs))
        action = dist.sample(seed=k_action)
        nxt = venv.step(vstate, action)
        transition = Transition(
            obs=vstate.env.obs,
            critic_obs=vstate.env.critic_obs,
            action=action,
            log_prob=dist.log_prob(action),
            final_critic_obs=nxt.final_critic_obs,
            reward=nxt.env.reward,
            terminated=nxt.env.terminated,
            truncated=nxt.env.truncated,
            episode=nxt.stats,
            env_metrics=nxt.env.metrics,
        )
        return state.replace(env=nxt, key=key), transition

    return jax.lax.scan(step, state, None, length)


def rollout_metrics(traj: Transition) -> dict[str, jax.Array]:
    """Means over the episodes that ended in this rollout (NaN if none) and over all steps."""
    done = traj.terminated | traj.truncated
    count = done.sum()

    def per_episode(x: jax.Array) -> jax.Array:
        return jnp.where(count > 0, x.sum() / jnp.maximum(count, 1), jnp.nan)

    metrics = {
        "episode/return": per_episode(traj.episode.done_return),
        "episode/length": per_episode(traj.episode.done_length),
        "episode/count": count.astype(jnp.float32),
        "episode/terminated": traj.terminated.sum() / jnp.maximum(count, 1),
    }
    metrics |= {f"reward/{k}": per_episode(v) for k, v in traj.episode.done_term_sums.items()}
    metrics |= {f"env/{k}": v.mean() for k, v in traj.env_metrics.items()}
    return metrics


def make_optimizer(config: PPOConfig) -> optax.GradientTransformation:
    """Adam after global gradient-norm clipping; constant or linearly annealed learning rate."""
    steps = config.num_updates * config.num_epochs * config.num_minibatches
    lr = optax.linear_schedule(config.learning_rate, 0.0, steps) if config.anneal_lr else None
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(lr or config.learning_rate, eps=1e-5),
    )


def make_train(config: PPOConfig, env: Any = None) -> Trainer:
    """Pure `init`, `train_chunk` and `train` for any interface.Env (default: default_env)."""
    env = default_env(config.env) if env is None else env
    venv = VecEnv(env, config.num_envs)
    actor = Actor(config.actor_hidden, env.action_size, config.activation, config.init_log_std)
    critic = Critic(config.critic_hidden, config.activation)
    optimizer = make_optimizer(config)

    def init(key: jax.Array) -> TrainState:
        k_actor, k_critic, k_env, key = jax.random.split(key, 4)
        params = Params(
            actor=actor.init(k_actor, jnp.zeros(env.obs_size)),
            critic=critic.init(k_critic, jnp.zeros(env.critic_obs_size)),
        )
        state = TrainState(
            params=params,
            opt_state=optimizer.init(params),
            actor_norm=normalizer_init(env.obs_size),
            critic_norm=normalizer_init(env.critic_obs_size),
            env=venv.reset(k_env),
            key=key,
            update=jnp.zeros((), jnp.int32),
        )
        # Strong types throughout, so a chunk's output has exactly the types of its input.
        return jax.tree.map(lambda x: jnp.asarray(x, x.dtype), state)

    def sgd_step(carry: SGDCarry, minibatch: Batch) -> tuple[SGDCarry, dict[str, jax.Array]]:
        grad_fn = jax.grad(ppo_loss, has_aux=True)
        grads, metrics = grad_fn(carry.params, minibatch, actor, critic, config)
        updates, opt_state = optimizer.update(grads, carry.opt_state, carry.params)
        metrics["optim/grad_norm"] = optax.global_norm(grads)
        return SGDCarry(optax.apply_updates(carry.params, updates), opt_state), metrics

    def update(state: TrainState, _) -> tuple[TrainState, dict[str, jax.Array]]:
        # -- rollout with the current policy and normalizer statistics -----------------------
        state, traj = rollout(venv, actor, state, config.unroll_length)
        # Values of the whole rollout at once (one large matmul beats one per step).
        critic_obs = normalize(state.critic_norm, traj.critic_obs)
        values = critic.apply(state.params.critic, critic_obs)
        final_obs = normalize(state.critic_norm, traj.final_critic_obs)
        next_values = critic.apply(state.params.critic, final_obs)
        adv = gae(traj.reward, values, next_values, traj.terminated, traj.truncated,
                  config.gamma, config.gae_lambda)  # fmt: skip
        batch = Batch(
            obs=normalize(state.actor_norm, traj.obs),
            critic_obs=critic_obs,
            action=traj.action,
            log_prob=traj.log_prob,
            value=values,
            advantage=adv.advantages,
            target=adv.returns,
        )
        batch = jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)

        # -- epochs x minibatches of SGD (same statistics as the rollout: ratio starts at 1) -
        def epoch(carry: SGDCarry, key: jax.Array) -> tuple[SGDCarry, dict[str, jax.Array]]:
            order = jax.random.permutation(key, config.batch_size)
            shape = (config.num_minibatches, config.minibatch_size)
            minibatches = jax.tree.map(lambda x: x[order].reshape(shape + x.shape[1:]), batch)
            return jax.lax.scan(sgd_step, carry, minibatches)

        key, k_epochs = jax.random.split(state.key)
        sgd, losses = jax.lax.scan(
            epoch,
            SGDCarry(state.params, state.opt_state),
            jax.random.split(k_epochs, config.num_epochs),
        )

        # -- normalizer statistics take in this rollout after the update ---------------------
        state = state.replace(
            params=sgd.params,
            opt_state=sgd.opt_state,
            actor_norm=normalizer_update(state.actor_norm, traj.obs),
            critic_norm=normalizer_update(state.critic_norm, traj.critic_obs),
            key=key,
            update=state.update + 1,
        )
        metrics = rollout_metrics(traj) | {k: v.mean() for k, v in losses.items()}
        metrics["policy/std"] = jnp.exp(sgd.params.actor["params"]["log_std"]).mean()
        return state, metrics

    def train_chunk(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        return jax.lax.scan(update, state, None, config.updates_per_chunk)

    def train(key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        return jax.lax.scan(update, init(key), None, config.num_updates)

    return Trainer(init, train_chunk, train, env, actor, critic)


# ---------------------------------------------------------------------------------------------
# Saved policies: actor params + actor normalizer + config, enough to act without training code
# ---------------------------------------------------------------------------------------------


def _config_json(config: PPOConfig) -> str:
    return json.dumps(dataclasses.asdict(config), indent=1)


def _policy_entry(actor_params: Any, actor_norm: RunningStats) -> dict[str, Any]:
    return {"actor": actor_params, "actor_norm": serialization.to_state_dict(actor_norm)}


def save_checkpoint(path: str, config: PPOConfig, state: TrainState) -> None:
    """Atomically save a seed-batched TrainState, each seed's policy, and the config."""
    policies = {
        str(i): _policy_entry(
            *jax.tree.map(lambda x, i=i: x[i], (state.params.actor, state.actor_norm))
        )
        for i in range(config.num_seeds)
    }
    runs.save_msgpack(path, state, config=_config_json(config), policies=policies)


def save_policy(path: str, config: PPOConfig, actor_params: Any, actor_norm: RunningStats) -> None:
    """Atomically save one policy (actor params, actor normalizer, config) for load_policy."""
    policies = {"0": _policy_entry(actor_params, actor_norm)}
    runs.save_msgpack(path, config=_config_json(config), policies=policies)


def load_policy_params(path: str, seed: int = 0) -> tuple[PPOConfig, Any, RunningStats]:
    """(config, actor params, actor normalizer statistics) of one seed's saved policy."""
    payload = runs.load_msgpack(path)
    config = load_config(overrides=json.loads(payload["config"]))
    saved = jax.tree.map(jnp.asarray, payload["policies"][str(seed)])
    return config, saved["actor"], RunningStats(**saved["actor_norm"])


def make_policy(
    config: PPOConfig, actor_params: Any, stats: RunningStats
) -> Callable[[jax.Array], jax.Array]:
    """Deterministic policy: normalize, actor mean, clip to [-1, 1]; what exports must match."""
    action_size = actor_params["params"]["log_std"].shape[-1]
    actor = Actor(config.actor_hidden, action_size, config.activation, config.init_log_std)

    def policy(obs: jax.Array) -> jax.Array:
        mean, _ = actor.apply(actor_params, normalize(stats, obs))
        return jnp.clip(mean, -1.0, 1.0)

    return policy


def load_policy(path: str, seed: int = 0) -> tuple[Any, Callable[[jax.Array], jax.Array]]:
    """Env config and a jitted deterministic `policy(obs) -> action` from a policy/checkpoint."""
    config, actor_params, stats = load_policy_params(path, seed)
    return config.env, jax.jit(make_policy(config, actor_params, stats))


# ---------------------------------------------------------------------------------------------
# The driver: compiled chunks, progress lines, metrics, checkpoints, curves
# ---------------------------------------------------------------------------------------------

PANELS = ["episode/return", "episode/length", "reward/", "loss/value", "loss/policy",
          "policy/entropy", "policy/approx_kl", "policy/std"]  # fmt: skip


def over_seeds(fn: Callable[..., Any], num_seeds: int) -> Callable[..., Any]:
    """`fn` mapped over a leading seed axis of its arguments and results.

    One seed gets the same axis by a squeeze and an expand instead of `jax.vmap`: vmapping the
    whole train chunk over a batch of one makes XLA's CPU program about 30% slower (measured on
    the walking config, 512 envs), while the reshape costs nothing.
    """
    if num_seeds > 1:
        return jax.vmap(fn)

    def one_seed(*args: Any) -> Any:
        out = fn(*jax.tree.map(lambda x: x[0], args))
        return jax.tree.map(lambda x: x[None], out)

    return one_seed


def run(
    config: PPOConfig,
    run_dir: str,
    env: Any = None,
    resume: bool = False,
    stop_after: int | None = None,
    profile: bool = False,
) -> TrainState:
    """Train `config.num_seeds` seeds chunk by chunk, writing the run directory; return the state.

    `resume` continues from run_dir/checkpoint.msgpack; `stop_after` stops after that many updates
    as an interrupted run would (without final files).
    """
    os.makedirs(run_dir, exist_ok=True)
    checkpoint = os.path.join(run_dir, "checkpoint.msgpack")
    runs.atomic_write(os.path.join(run_dir, "config.json"), _config_json(config).encode())
    trainer = make_train(config, env)
    init = over_seeds(trainer.init, config.num_seeds)
    keys = jax.random.split(jax.random.PRNGKey(config.seed), config.num_seeds)

    t0 = time.perf_counter()
    state = (
        runs.restore_tree(checkpoint, jax.eval_shape(init, keys)) if resume else jax.jit(init)(keys)
    )
    done = int(state.update[0])
    log = runs.MetricsLog(run_dir, config.num_seeds, resume_after=done if resume else None)
    # Compiled ahead of time: an input of other types fails loudly instead of recompiling.
    chunk = jax.jit(over_seeds(trainer.train_chunk, config.num_seeds)).lower(state).compile()
    print(f"compiled in {time.perf_counter() - t0:.1f} s (init + train chunk)", flush=True)

    end = config.num_updates if stop_after is None else min(stop_after, config.num_updates)
    while done < end:
        if profile:  # the first call after compilation is already steady state
            jax.profiler.start_trace(os.path.join(run_dir, "profile"))
        t = time.perf_counter()
        state, metrics = jax.block_until_ready(chunk(state))
        seconds = time.perf_counter() - t
        if profile:
            jax.profiler.stop_trace()
            profile = False
        first, done = done, done + config.updates_per_chunk
        metrics = {k: np.asarray(v) for k, v in metrics.items()}  # (num_seeds, updates_per_chunk)
        metrics["perf/steps_per_second"] = np.full_like(
            metrics["loss/total"],
            config.num_seeds * config.updates_per_chunk * config.batch_size / seconds,
        )
        log.write(metrics, first, config.batch_size)
        print(progress_line(config, metrics, done), flush=True)
        every = config.checkpoint_every
        if done == config.num_updates or (every > 0 and done // every > first // every):
            save_checkpoint(checkpoint, config, state)
    log.close()
    if done == config.num_updates:
        first_seed = jax.tree.map(lambda x: x[0], (state.params.actor, state.actor_norm))
        save_policy(os.path.join(run_dir, "policy.msgpack"), config, *first_seed)
        runs.plot_curves(log.path, os.path.join(run_dir, "learning_curves.png"), PANELS)
    return state


def progress_line(config: PPOConfig, metrics: dict[str, np.ndarray], done: int) -> str:
    """Means over seeds and the chunk's updates: speed, episodes, losses, then each reward term."""
    with np.errstate(all="ignore"):
        m = {
            k: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
            for k, v in metrics.items()
        }
    head = (
        f"update {done}/{config.num_updates}  env steps {done * config.batch_size:,}  "
        f"{m['perf/steps_per_second']:,.0f} steps/s  return {m['episode/return']:.3f}  "
        f"length {m['episode/length']:.1f}  loss/policy {m['loss/policy']:.4f}  "
        f"loss/value {m['loss/value']:.4f}  entropy {m['policy/entropy']:.3f}  "
        f"approx_kl {m['policy/approx_kl']:.4f}"
    )
    if config.num_seeds > 1:
        head += f"  (mean of {config.num_seeds} seeds; per seed in metrics.jsonl)"
    terms = "  ".join(f"{k} {v:.3f}" for k, v in m.items() if k.startswith("reward/"))
    return f"{head}\n    {terms}" if terms else head


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Overrides: any PPOConfig field as key=value, e.g. num_envs=8 env.noise.gyro=0.1",
    )
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="TOML (or JSON) config file")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument("--run-dir", help="instead of runs/<name>-<timestamp>")
    parser.add_argument("--num-seeds", type=int, help="same as num_seeds=N")
    parser.add_argument("--profile", action="store_true", help="trace one chunk to RUN_DIR/profile")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    overrides = args.overrides + ([f"num_seeds={args.num_seeds}"] if args.num_seeds else [])
    try:
        path = os.path.join(args.resume, "config.json") if args.resume else args.config
        config = load_config(path, overrides)
        env = default_env(config.env)  # loads the model and resolves names: errors come first
    except (ConfigError, OSError) as e:
        parser.error(str(e))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = args.resume or args.run_dir or os.path.join("runs", f"{config.name}-{stamp}")
    print(f"run directory {run_dir}: {config.num_updates} updates of {config.batch_size:,} steps")
    run(config, run_dir, env, resume=bool(args.resume), profile=args.profile)


if __name__ == "__main__":
    main()
