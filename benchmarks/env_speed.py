"""Raw environment throughput: control steps per second with random actions, per batch size.

Prints one row per batch size: steady-state control steps/s of `vmap(env.step)` alone and through
`VecEnv` (auto-reset with a real `reset` and episode statistics), with compile time apart.

    python benchmarks/env_speed.py                       # 64 ... 4096 envs
    python benchmarks/env_speed.py --num-envs 256 1024 --steps 20
    python benchmarks/env_speed.py --config tests/assets/biped12.toml   # another robot ([env])
"""

import argparse
import os
import platform
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from config import ConfigError  # noqa: E402
from env import WildRobotEnv, load_env_config  # noqa: E402
from wrappers import VecEnv  # noqa: E402


def time_rollout(step_fn, state, num_envs: int, action_size: int, steps: int, repeats: int):
    """(compile seconds, steady steps/s) of a jitted scan of `steps` random-action steps."""

    def rollout(state, key):
        def body(state, k):
            action = jax.random.uniform(k, (num_envs, action_size), minval=-1.0, maxval=1.0)
            return step_fn(state, action), None

        return jax.lax.scan(body, state, jax.random.split(key, steps))[0]

    rollout = jax.jit(rollout)
    t0 = time.perf_counter()
    state = jax.block_until_ready(rollout(state, jax.random.key(1)))
    compile_s = time.perf_counter() - t0
    state = jax.block_until_ready(rollout(state, jax.random.key(2)))  # warm-up on a stepped state
    t0 = time.perf_counter()
    for i in range(repeats):
        state = rollout(state, jax.random.key(3 + i))
    jax.block_until_ready(state)
    return compile_s, num_envs * steps * repeats / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="a training config (TOML/JSON); its [env] section is used")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--steps", type=int, default=20, help="control steps per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    try:
        env = WildRobotEnv(load_env_config(args.config))
    except ConfigError as e:
        parser.error(str(e))
    c = env.config
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.default_backend()}; sim_dt {c.sim_dt}, "
        f"{env.n_substeps} substeps, solver {c.solver} x{c.iterations} (ls {c.ls_iterations}); "
        f"{os.path.basename(c.model_path)}, {env.nu} actuators"
    )
    print("| envs | env.step steps/s | VecEnv steps/s | compile env.step s | compile VecEnv s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n in args.num_envs:
        keys = jax.random.split(jax.random.key(0), n)
        raw = time_rollout(
            jax.vmap(env.step), jax.vmap(env.reset)(keys), n, env.nu, args.steps, args.repeats
        )
        venv = VecEnv(env, n)
        vec = time_rollout(
            venv.step, venv.reset(jax.random.key(0)), n, env.nu, args.steps, args.repeats
        )
        print(f"| {n} | {raw[1]:,.0f} | {vec[1]:,.0f} | {raw[0]:.1f} | {vec[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
