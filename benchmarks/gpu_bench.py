"""Throughput on one accelerator: raw env stepping and PPO training per batch size, compiles apart.

For each number of envs and physics implementation (`--impl`: MJX's JAX code, MuJoCo Warp): the
raw env rate (random actions through the VecEnv, auto-reset included) and the training rate (the
driver's compiled chunk: rollout, advantages, PPO update), each the best of `--repeats` timed calls
after a warm-up call of the same program, with the compile time and the device's peak memory
beside them. Sizes run in the order given and stop when `--budget` seconds have passed, so a
leased machine's time is never overrun; each row is printed, and appended to `--out` as JSON, as
soon as it is measured.

    python benchmarks/gpu_bench.py                                  # 4096..32768 envs, GPU config
    python benchmarks/gpu_bench.py --num-envs 32 64 --updates 1     # a quick check on a CPU
    python benchmarks/gpu_bench.py --impl jax warp                  # both physics (Warp installed)
    JAX_DEFAULT_MATMUL_PRECISION=tensorfloat32 python benchmarks/gpu_bench.py  # TF32 physics

The settings that matter on an NVIDIA GPU are applied here unless already set, as they should be
for training (README, "Scaling out"): `--xla_gpu_triton_gemm_any=True` and float32 matmuls
(`JAX_DEFAULT_MATMUL_PRECISION=highest`: the physics solver in TF32 is not what the CPU runs).
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
if "--xla_gpu_triton_gemm_any" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_gpu_triton_gemm_any=True"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import driver  # noqa: E402
import parallel  # noqa: E402
import ppo  # noqa: E402
from wrappers import VecEnv  # noqa: E402

SIZES = [4096, 8192, 16384, 32768]


def peak_gib() -> float:
    """The device's peak memory in use so far (GiB), or NaN where the backend does not say."""
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use", math.nan) / 2**30


def timed(call, state, repeats: int) -> tuple[float, object]:
    """Best wall time of `repeats` calls of `call(state) -> state`, each waited for."""
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        state = jax.block_until_ready(call(state))
        best = min(best, time.perf_counter() - t)
    return best, state


def train_rate(config, env, repeats: int) -> dict[str, float]:
    """Env steps/s of the driver's training chunk on one device, and its compile time."""
    mesh = parallel.make_mesh()
    t = time.perf_counter()
    trainer = ppo.make_train(config, env)
    init = driver.over_seeds(trainer.init, 1)
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    shardings = parallel.state_shardings(jax.eval_shape(init, keys), mesh)
    state = jax.jit(init, out_shardings=shardings)(keys)
    chunk = driver.compile_chunk(trainer.train_chunk, state, shardings, mesh)
    compile_s = time.perf_counter() - t
    state = jax.block_until_ready(chunk(state)[0])  # warm-up: the timed calls' very inputs
    seconds, _ = timed(lambda s: chunk(s)[0], state, repeats)
    steps = config.num_envs * config.unroll_length * config.updates_per_chunk
    return {"train_steps_per_s": steps / seconds, "train_compile_s": compile_s}


def raw_rate(config, env, steps: int, repeats: int) -> dict[str, float]:
    """Env steps/s of `steps` control steps of all envs with random actions, and compile time."""
    venv = VecEnv(env, config.num_envs)
    std = math.exp(config.init_log_std)

    def rollout(carry):
        def body(carry, _):
            vstate, key = carry
            key, k = jax.random.split(key)
            action = std * jax.random.normal(k, (venv.num_envs, venv.action_size))
            return (venv.step(vstate, action), key), None

        return jax.lax.scan(body, carry, length=steps)[0]

    t = time.perf_counter()
    carry = jax.jit(lambda k: (venv.reset(k), k))(jax.random.PRNGKey(0))
    call = jax.jit(rollout).lower(carry).compile()
    compile_s = time.perf_counter() - t
    carry = jax.block_until_ready(call(carry))
    seconds, _ = timed(call, carry, repeats)
    return {"env_steps_per_s": config.num_envs * steps / seconds, "env_compile_s": compile_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = os.path.join(ROOT, "configs", "wildrobot_walk_gpu.toml")
    parser.add_argument("--config", default=default)
    parser.add_argument("--num-envs", type=int, nargs="+", default=SIZES)
    parser.add_argument("--updates", type=int, default=2, help="PPO updates per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each program")
    parser.add_argument("--budget", type=float, default=math.inf, help="seconds; then stop")
    parser.add_argument("--impl", nargs="+", default=["jax"], choices=["jax", "warp"],
                        help="physics implementations (env.impl), each at every size")  # fmt: skip
    parser.add_argument("--skip-raw", action="store_true", help="training rates only")
    parser.add_argument("--out", help="append one JSON line per size here")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()

    start = time.perf_counter()
    device = jax.devices()[0]
    header = {
        "device": device.device_kind,
        "platform": device.platform,
        "jax": jax.__version__,
        "matmul_precision": jax.config.jax_default_matmul_precision,
        "xla_flags": os.environ.get("XLA_FLAGS", "").strip(),
        "config": os.path.relpath(args.config, ROOT),
        "overrides": args.overrides,
    }
    print("# " + json.dumps(header), flush=True)
    print("| envs | physics | raw env steps/s | compile s | train steps/s | compile s | peak GiB |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |", flush=True)
    for num_envs, impl in [(n, impl) for n in args.num_envs for impl in args.impl]:
        if time.perf_counter() - start > args.budget:
            print(f"| {num_envs} | {impl} | not run: the {args.budget:.0f} s budget is spent |",
                  flush=True)  # fmt: skip
            continue
        overrides = args.overrides + [f"num_envs={num_envs}", f"updates_per_chunk={args.updates}"]
        overrides += [f"env.impl={impl}", f"env.warp_max_envs={num_envs}"]
        config = ppo.load_config(args.config, overrides)
        env = ppo.default_env(config.env)
        row = {"num_envs": num_envs, "impl": impl, **header}
        row |= train_rate(config, env, args.repeats)
        if not args.skip_raw:
            row |= raw_rate(config, env, config.unroll_length * args.updates, args.repeats)
        row["peak_gib"] = peak_gib()
        raw = "- | -"
        if "env_steps_per_s" in row:
            raw = f"{row['env_steps_per_s']:,.0f} | {row['env_compile_s']:.1f}"
        print(f"| {num_envs} | {impl} | {raw} | {row['train_steps_per_s']:,.0f} | "
              f"{row['train_compile_s']:.1f} | {row['peak_gib']:.1f} |", flush=True)  # fmt: skip
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    print(f"# {time.perf_counter() - start:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
