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

import dataclasses
import json
import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

import driver
import runs
from config import (
    ConfigError,
    bounded,
    check,
    file_path,
    load_file,
    one_of,
    override,
    parse_overrides,
)
from parallel import shard_batch
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

ACTIVATIONS = {"elu": nn.elu, "relu": nn.relu, "tanh": nn.tanh, "silu": nn.silu}


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters and the environment they train; configs/*.toml may set any field.

    Each field declares its allowed values (config.bounded / one_of); `check_config` tests them.
    """

    name: str = "wildrobot_walk"  # run directory prefix
    # Seed i of num_seeds trains from split(PRNGKey(seed), num_seeds)[i]; PRNGKey keeps 32 bits.
    seed: int = bounded(0, ge=0, le=2**32 - 1)
    num_seeds: int = bounded(1, ge=1)  # independent runs side by side in one program (vmap)
    total_steps: int = bounded(50_000_000, ge=1)  # env steps per seed, rounded up to whole chunks
    num_envs: int = bounded(1024, ge=1)  # parallel environments per seed
    unroll_length: int = bounded(32, ge=1)  # control steps per env per update
    num_epochs: int = bounded(2, ge=1)  # passes over each rollout
    num_minibatches: int = bounded(8, ge=1)  # per epoch; batch_size = num_envs * unroll_length
    learning_rate: float = bounded(3e-4, gt=0)  # Adam
    anneal_lr: bool = False  # linearly to 0 over training
    gamma: float = bounded(0.99, ge=0, le=1)
    gae_lambda: float = bounded(0.95, ge=0, le=1)
    clip_eps: float = bounded(0.2, gt=0)  # policy ratio clip, and value clip when clip_value_loss
    clip_value_loss: bool = False
    normalize_advantages: bool = True  # per minibatch
    value_coef: float = bounded(0.5, ge=0)
    entropy_coef: float = bounded(0.005, ge=0)
    # Weight of a left-right symmetry loss: the policy's mean action on a mirrored observation
    # against its mirrored mean action (the env's `mirror()` gives both reflections); 0: off.
    symmetry_coef: float = bounded(0.0, ge=0)
    max_grad_norm: float = bounded(1.0, gt=0)  # global norm over actor and critic gradients
    actor_hidden: tuple[int, ...] = bounded((128, 128), ge=1)  # units per hidden layer
    critic_hidden: tuple[int, ...] = bounded((128, 128), ge=1)
    activation: str = one_of("elu", ACTIVATIONS)
    init_log_std: float = -0.5  # the policy's initial exploration noise (std = exp)
    # Fine-tuning: a saved policy (or checkpoint; seed 0) whose actor and observation statistics
    # a fresh run starts from; the critic starts fresh. "": every network starts fresh.
    init_policy: str = file_path("")
    # Updates at the start of a run in which only the critic learns (the actor's steps are
    # dropped), so that a loaded actor is not steered by an untrained critic.
    critic_warmup: int = bounded(0, ge=0)
    updates_per_chunk: int = bounded(5, ge=1)  # updates per jitted call: the cadence of logging
    # Updates between checkpoints (at chunk ends); always one at the end; 0: only at the end.
    checkpoint_every: int = bounded(50, ge=0)
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

    def relations(self) -> list[tuple[str, bool, str]]:
        """Conditions between fields, for config.check: (key, holds, what is wrong)."""
        batch = self.batch_size
        return [
            ("num_minibatches", batch % self.num_minibatches == 0,
             f"{self.num_minibatches} does not divide the batch of num_envs * unroll_length = "
             f"{batch}"),
        ]  # fmt: skip


def check_config(config: PPOConfig) -> PPOConfig:
    """Raise ConfigError naming the first field (env's included) out of bounds; else return it."""
    check(config)
    return config


def load_config(
    path: str | None = None, overrides: Any = (), env_config: Any = None, cls: type = PPOConfig
) -> PPOConfig:
    """PPOConfig (or a subclass, `cls`) from a TOML/JSON file plus `key=value` strings (or a
    dict); names any bad key.

    The file may `extends = "base.toml"` another (config.load_file). `env_config` is the
    environment's default config that [env] / `env.<field>` values override; None means
    WildRobot's (see default_env). Every value is checked before this returns.
    """
    config = cls(env=default_env_config() if env_config is None else env_config)
    if path:
        config = load_file(config, path)
    # Paths given on the command line are relative to the working directory, made absolute here.
    return check_config(override(config, parse_overrides(overrides), base_dir=os.getcwd()))


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


def hidden_layers(x: jax.Array, hidden: tuple[int, ...], activation: str) -> jax.Array:
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
        x = hidden_layers(obs, self.hidden, self.activation)
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
        x = hidden_layers(critic_obs, self.hidden, self.activation)
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
    extra: Any = None  # what rollout's `observe` recorded (e.g. AMP's motion features)


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
    mirror_obs: jax.Array | None = None  # the obs reflected left-right (then normalized), or None


class SGDCarry(NamedTuple):
    params: Params
    opt_state: optax.OptState


class Nets(NamedTuple):
    """The learner's constant pieces, shared by PPO and the algorithms built on it (amp.py)."""

    venv: VecEnv
    actor: Actor
    critic: Critic
    optimizer: optax.GradientTransformation
    mirror: tuple[jax.Array, jax.Array] | None = None  # (obs, action) reflections; None: no loss
    start: tuple[Any, RunningStats] | None = None  # actor params and statistics of init_policy


class Trainer(NamedTuple):
    init: Callable[[jax.Array], Any]  # key -> train state (TrainState here)
    train_chunk: Callable[[Any], tuple[Any, dict[str, jax.Array]]]
    train: Callable[[jax.Array], tuple[Any, dict[str, jax.Array]]]
    env: Any
    actor: Actor
    critic: Critic


# ---------------------------------------------------------------------------------------------
# Rollout, loss, training
# ---------------------------------------------------------------------------------------------


def ppo_loss(
    params: Params,
    batch: Batch,
    actor: Actor,
    critic: Critic,
    config: PPOConfig,
    mirror_action: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped policy loss + value_coef * value loss - entropy_coef * entropy, on one minibatch;
    plus symmetry_coef * symmetry loss where the batch carries mirrored observations."""
    mean, log_std = actor.apply(params.actor, batch.obs)
    dist = action_distribution(mean, log_std)
    log_prob = dist.log_prob(batch.action)
    advantages = batch.advantage
    if config.normalize_advantages:
        advantages = normalize_advantages(advantages)
    pi_loss = policy_loss(log_prob, batch.log_prob, advantages, config.clip_eps)
    values = critic.apply(params.critic, batch.critic_obs)
    v_loss = value_loss(values, batch.value, batch.target, config.clip_eps, config.clip_value_loss)
    entropy = dist.entropy().mean()
    total = pi_loss + config.value_coef * v_loss - config.entropy_coef * entropy
    metrics = {
        "loss/policy": pi_loss,
        "loss/value": v_loss,
        "policy/entropy": entropy,
        "policy/approx_kl": approx_kl(log_prob, batch.log_prob),
        "policy/clip_fraction": jnp.mean(
            jnp.abs(jnp.exp(log_prob - batch.log_prob) - 1) > config.clip_eps
        ),
    }
    if batch.mirror_obs is not None:
        mirrored_mean, _ = actor.apply(params.actor, batch.mirror_obs)
        symmetry = jnp.mean(jnp.sum((mirrored_mean - mean @ mirror_action.T) ** 2, axis=-1))
        total = total + config.symmetry_coef * symmetry
        metrics["loss/symmetry"] = symmetry
    return total, {"loss/total": total} | metrics


def rollout(
    venv: VecEnv,
    actor: Actor,
    state: TrainState,
    length: int,
    observe: Callable[[VecState, VecState], Any] | None = None,
) -> tuple[TrainState, Transition]:
    """Run the current policy `length` steps in every env; returns the advanced state and data.

    `observe(before, after)`, if given, records anything else of each step in Transition.extra.
    """

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
            extra=None if observe is None else observe(vstate, nxt),
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


def learn(
    state: TrainState, traj: Transition, nets: Nets, config: PPOConfig
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One PPO update from a rollout: values, GAE, epochs x minibatches, then the normalizers."""
    actor, critic, optimizer = nets.actor, nets.critic, nets.optimizer
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
        mirror_obs=None
        if nets.mirror is None
        else normalize(state.actor_norm, traj.obs @ nets.mirror[0].T),
    )
    batch = jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)

    # -- epochs x minibatches of SGD (same statistics as the rollout: ratio starts at 1) -----
    def sgd_step(carry: SGDCarry, minibatch: Batch) -> tuple[SGDCarry, dict[str, jax.Array]]:
        grad_fn = jax.grad(ppo_loss, has_aux=True)
        mirror_action = None if nets.mirror is None else nets.mirror[1]
        grads, metrics = grad_fn(carry.params, minibatch, actor, critic, config, mirror_action)
        updates, opt_state = optimizer.update(grads, carry.opt_state, carry.params)
        if config.critic_warmup:
            # Adam still sees the actor's gradients, so its moments have their usual size when
            # the actor starts learning; only the steps are dropped.
            held = (state.update < config.critic_warmup).astype(jnp.float32)
            updates = updates.replace(actor=jax.tree.map(lambda u: u * (1 - held), updates.actor))
        metrics["optim/grad_norm"] = optax.global_norm(grads)
        return SGDCarry(optax.apply_updates(carry.params, updates), opt_state), metrics

    def epoch(carry: SGDCarry, key: jax.Array) -> tuple[SGDCarry, dict[str, jax.Array]]:
        order = jax.random.permutation(key, config.batch_size)
        shape = (config.num_minibatches, config.minibatch_size)
        # Each device takes the gradient of its slice of every minibatch (XLA sums them).
        minibatches = jax.tree.map(
            lambda x: shard_batch(x[order].reshape(shape + x.shape[1:]), axis=1), batch
        )
        return jax.lax.scan(sgd_step, carry, minibatches)

    key, k_epochs = jax.random.split(state.key)
    sgd, losses = jax.lax.scan(
        epoch,
        SGDCarry(state.params, state.opt_state),
        jax.random.split(k_epochs, config.num_epochs),
    )

    # -- normalizer statistics take in this rollout after the update -------------------------
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


def make_nets(config: PPOConfig, env: Any, observe_final: Callable | None = None) -> Nets:
    """The batched env (see VecEnv for observe_final), actor, critic and optimizer of a config,
    and the env's left-right reflections where the config has a symmetry loss."""
    mirror = None
    if config.symmetry_coef > 0:
        if not hasattr(env, "mirror"):
            raise ConfigError(
                f"symmetry_coef needs an env with mirror(); {type(env).__name__} has none"
            )
        mirror = tuple(jnp.asarray(m, jnp.float32) for m in env.mirror())
    actor = Actor(config.actor_hidden, env.action_size, config.activation, config.init_log_std)
    start = None
    if config.init_policy:
        start = load_start(config.init_policy, actor, env.obs_size)
    return Nets(
        venv=VecEnv(env, config.num_envs, observe_final),
        actor=actor,
        critic=Critic(config.critic_hidden, config.activation),
        optimizer=make_optimizer(config),
        mirror=mirror,
        start=start,
    )


def load_start(path: str, actor: Actor, obs_size: int) -> tuple[Any, RunningStats]:
    """Actor params and observation statistics of a saved policy, as `actor` on `obs_size`
    observations would have them; ConfigError naming the first array that does not fit."""
    try:
        _, params, stats = load_policy_params(path)
    except ConfigError as e:
        raise ConfigError(f"init_policy: {e}") from None
    fresh = jax.eval_shape(actor.init, jax.random.PRNGKey(0), jnp.zeros(obs_size))
    fresh_stats = normalizer_init(obs_size)
    saved = {"actor": params, "observation statistics": stats}
    wanted = {"actor": fresh, "observation statistics": fresh_stats}
    have = dict(jax.tree_util.tree_flatten_with_path(saved)[0])
    here = f"actor_hidden {actor.hidden}, {obs_size} observations, {actor.action_size} actions"
    for key, want in jax.tree_util.tree_flatten_with_path(wanted)[0]:
        name = jax.tree_util.keystr(key, simple=True, separator="/")
        if key not in have:
            raise ConfigError(f"init_policy '{path}' has no {name}: this config has {here}")
        if have[key].shape != want.shape:
            raise ConfigError(
                f"init_policy '{path}' does not fit this config: {name} is "
                f"{tuple(have[key].shape)} there, {want.shape} here ({here})"
            )
    if len(have) != len(jax.tree.leaves(wanted)):
        raise ConfigError(f"init_policy '{path}' has more actor arrays than this config ({here})")
    cast = jax.tree.map(lambda x, like: jnp.asarray(x, like.dtype), saved, wanted)
    return cast["actor"], cast["observation statistics"]


def init_state(key: jax.Array, nets: Nets) -> TrainState:
    """Fresh networks (the actor from init_policy where there is one), optimizer, normalizers
    and envs."""
    env = nets.venv.env
    k_actor, k_critic, k_env, key = jax.random.split(key, 4)
    actor = nets.actor.init(k_actor, jnp.zeros(env.obs_size))
    actor_norm = normalizer_init(env.obs_size)
    if nets.start is not None:
        actor, actor_norm = nets.start
    params = Params(actor=actor, critic=nets.critic.init(k_critic, jnp.zeros(env.critic_obs_size)))
    state = TrainState(
        params=params,
        opt_state=nets.optimizer.init(params),
        actor_norm=actor_norm,
        critic_norm=normalizer_init(env.critic_obs_size),
        env=nets.venv.reset(k_env),
        key=key,
        update=jnp.zeros((), jnp.int32),
    )
    # Strong types throughout, so a chunk's output has exactly the types of its input.
    return jax.tree.map(lambda x: jnp.asarray(x, x.dtype), state)


def make_train(config: PPOConfig, env: Any = None) -> Trainer:
    """Pure `init`, `train_chunk` and `train` for any interface.Env (default: default_env)."""
    env = default_env(config.env) if env is None else env
    nets = make_nets(config, env)

    def init(key: jax.Array) -> TrainState:
        return init_state(key, nets)

    def update(state: TrainState, _) -> tuple[TrainState, dict[str, jax.Array]]:
        state, traj = rollout(nets.venv, nets.actor, state, config.unroll_length)
        return learn(state, traj, nets, config)

    def train_chunk(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        return jax.lax.scan(update, state, None, config.updates_per_chunk)

    def train(key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        return jax.lax.scan(update, init(key), None, config.num_updates)

    return Trainer(init, train_chunk, train, env, nets.actor, nets.critic)


# ---------------------------------------------------------------------------------------------
# Saved policies: actor params + actor normalizer + config, enough to act without training code
# ---------------------------------------------------------------------------------------------


def load_policy_params(path: str, seed: int = 0) -> tuple[PPOConfig, Any, RunningStats]:
    """(config, actor params, actor normalizer statistics) of one seed's saved policy.

    A missing, unreadable or foreign file, or a seed the file lacks, raises ConfigError naming it.
    """
    try:
        payload = runs.load_msgpack(path)
    except FileNotFoundError:
        raise ConfigError(f"policy file not found: '{path}'") from None
    except (OSError, ValueError) as e:  # msgpack's errors are ValueErrors
        raise ConfigError(f"cannot read policy file '{path}': {e}") from None
    if not isinstance(payload, dict) or not {"config", "policies"} <= payload.keys():
        raise ConfigError(f"'{path}' is not a policy or checkpoint written by ppo.py")
    policies = payload["policies"]
    if str(seed) not in policies:
        raise ConfigError(f"'{path}' has no seed {seed}: it holds seeds {', '.join(policies)}")
    try:  # the saved values as they are: no path in them is relative to the working directory
        saved_config = json.loads(payload["config"])
        # A learner built on PPO (amp.py) saves more sections; the policy needs only these.
        fields = {f.name for f in dataclasses.fields(PPOConfig)}
        saved_config = {k: v for k, v in saved_config.items() if k in fields}
        env_config = None if saved_config.get("env") is None else default_env_config()
        config = check_config(override(PPOConfig(env=env_config), saved_config))
        if getattr(config.env, "impl", "jax") != "jax":
            # Playing and exporting need no MuJoCo Warp: it and MJX's JAX code step the same
            # physics (tests/test_warp.py).
            config = override(config, {"env": {"impl": "jax"}})
    except (ValueError, TypeError) as e:  # ConfigError is a ValueError
        raise ConfigError(f"the config saved in '{path}' does not load: {e}") from None
    saved = jax.tree.map(jnp.asarray, policies[str(seed)])
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
# The command line (driver.py): `python ppo.py`
# ---------------------------------------------------------------------------------------------

LEARNER = driver.Learner(
    script="ppo.py",
    description=__doc__.split("\n")[0],
    default_config=DEFAULT_CONFIG,
    load_config=load_config,
    prepare=lambda config: default_env(config.env),
    make_train=make_train,
)


def run(config: PPOConfig, run_dir: str, env: Any = None, **kwargs: Any) -> TrainState:
    """driver.run with PPO (resume, stop_after, profile as there)."""
    return driver.run(LEARNER, config, run_dir, env, **kwargs)


def main(argv: list[str] | None = None) -> None:
    driver.main(LEARNER, argv)


if __name__ == "__main__":
    main()
