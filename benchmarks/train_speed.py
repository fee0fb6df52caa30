"""Training throughput next to raw environment throughput, measured in the same process.

For each batch size: env steps/s of PPO training chunks (rollout + GAE + epochs x minibatches,
one compiled program) and of random actions stepped through the same VecEnv, their ratio (the
share of time left to the env: 0.85 means the learner costs 15%), compile time of the train chunk
and peak host memory so far. Timed calls alternate between the two, since other processes may
share the CPU: throughputs are the best call, the ratio the median over adjacent pairs.

    python benchmarks/train_speed.py                          # 256 ... 4096 envs, default config
    python benchmarks/train_speed.py --num-envs 1024 --quick  # one short measurement
    python benchmarks/train_speed.py --num-envs 512 actor_hidden=64,64 num_epochs=3
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ppo  # noqa: E402
from env import WildRobotEnv  # noqa: E402
from wrappers import VecEnv  # noqa: E402


def random_rollout(venv: VecEnv, steps: int, std: float):
    """A jittable function stepping `venv` `steps` times with random actions N(0, std^2).

    std is the untrained policy's, so both programs simulate similar motion. (Under vmap the MJX
    solver's cost does not depend on the motion: its loops run their full length.)
    """

    def rollout(vstate, key):
        def body(vstate, k):
            action = std * jax.random.normal(k, (venv.num_envs, venv.action_size))
            return venv.step(vstate, action), None

        return jax.lax.scan(body, vstate, jax.random.split(key, steps))[0]

    return rollout


def measure(config: ppo.PPOConfig, env: WildRobotEnv, repeats: int) -> dict[str, float]:
    """Compile both programs, warm each up on its own output, then time them alternately."""
    trainer = ppo.make_train(config, env)
    t0 = time.perf_counter()
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    chunk = jax.jit(trainer.train_chunk).lower(state).compile()  # AOT: no silent recompiles
    compile_s = time.perf_counter() - t0
    state = jax.block_until_ready(chunk(state))[0]  # warm-up

    steps = config.unroll_length * config.updates_per_chunk  # the same env steps as one chunk
    venv = VecEnv(env, config.num_envs)
    vstate = jax.jit(venv.reset)(jax.random.PRNGKey(0))
    rollout = (
        jax.jit(random_rollout(venv, steps, math.exp(config.init_log_std)))
        .lower(vstate, jax.random.PRNGKey(1))
        .compile()
    )
    vstate = jax.block_until_ready(rollout(vstate, jax.random.PRNGKey(1)))  # warm-up

    train_s, env_s = [], []
    for i in range(repeats):  # adjacent pairs see about the same load from other processes
        t = time.perf_counter()
        state = jax.block_until_ready(chunk(state))[0]
        train_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        vstate = jax.block_until_ready(rollout(vstate, jax.random.PRNGKey(2 + i)))
        env_s.append(time.perf_counter() - t)
    n = config.num_envs * steps
    return {
        "train": n / min(train_s),
        "env": n / min(env_s),
        "ratio": float(np.median(np.array(env_s) / np.array(train_s))),
        "compile": compile_s,
        "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=ppo.DEFAULT_CONFIG)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--updates", type=int, default=2, help="PPO updates per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each program")
    parser.add_argument("--quick", action="store_true", help="1 update per call, 1 repeat")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    updates, repeats = (1, 1) if args.quick else (args.updates, args.repeats)

    base = ppo.load_config(args.config, args.overrides)
    env = WildRobotEnv(base.env)
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
        f"({jax.default_backend()}); unroll {base.unroll_length}, {base.num_epochs} epochs x "
        f"{base.num_minibatches} minibatches, actor {base.actor_hidden}, critic "
        f"{base.critic_hidden}; {updates} updates per timed call, best of {repeats}"
    )
    print("| envs | train steps/s | raw env steps/s | ratio | compile s | peak RSS GiB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in args.num_envs:
        config = ppo.load_config(args.config, args.overrides + [f"num_envs={n}",
                                 f"updates_per_chunk={updates}"])  # fmt: skip
        r = measure(config, env, repeats)
        print(
            f"| {n} | {r['train']:,.0f} | {r['env']:,.0f} | {r['ratio']:.3f} | "
            f"{r['compile']:.1f} | {r['rss_gib']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
