"""Training throughput over devices and seeds at equal total envs, the raw env rate beside it.

Each layout runs in a process of its own (the CPU device count is fixed when JAX starts):
1, 2 and 4 devices (`jax_num_cpu_devices`; the default on a 2-core machine is 4) with one seed
of all the envs, then 1, 2 and 4 seeds sharing them, on one device. Train steps/s counts every
seed's env steps; raw env steps/s is random actions through the same VecEnv, same layout and envs.

    python benchmarks/scale_speed.py                       # 1024 envs, configs/wildrobot_walk.toml
    python benchmarks/scale_speed.py --num-envs 64 --layouts 1x1 2x1 num_epochs=1
    python benchmarks/scale_speed.py --layouts 1x1 2x1 4x1 --rounds 3  # a drifting machine

With `--rounds N` the layouts run N times, in reverse order every other round, and a summary gives
each layout's median rate and its median speed-up over the first layout within a round: a machine
that slows down or speeds up over minutes then moves every layout of a round alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUTS = ["1x1", "2x1", "4x1", "1x2", "1x4"]  # devices x seeds


def measure(args: argparse.Namespace) -> dict[str, float]:
    """In a child process: compile and time the training chunk and a raw env rollout."""
    import jax  # noqa: PLC0415

    sys.path.insert(0, ROOT)
    import driver  # noqa: PLC0415
    import parallel  # noqa: PLC0415

    parallel.use_cpu_devices(args.devices)  # before JAX starts
    import ppo  # noqa: PLC0415
    from wrappers import VecEnv  # noqa: PLC0415

    seeds = args.seeds
    overrides = args.overrides + [f"num_envs={args.num_envs // seeds}", f"num_seeds={seeds}",
                                  f"updates_per_chunk={args.updates}"]  # fmt: skip
    config = ppo.load_config(args.config, overrides)
    env = ppo.default_env(config.env)
    mesh = parallel.make_mesh()

    # -- training: the driver's program ----------------------------------------------------
    t = time.perf_counter()
    trainer = ppo.make_train(config, env)
    init = driver.init_over_seeds(trainer.init, seeds)
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    shardings = parallel.state_shardings(jax.eval_shape(init, keys), mesh)
    state = jax.jit(init, out_shardings=shardings)(keys)
    chunk = driver.compile_chunk(trainer.train_chunk, state, shardings, mesh)
    compile_s = time.perf_counter() - t
    state = jax.block_until_ready(chunk(state))[0]  # warm-up

    # -- raw env: random actions, all envs in one VecEnv, envs split over the devices ---------
    venv = VecEnv(env, args.num_envs)
    steps = config.unroll_length * args.updates
    std = math.exp(config.init_log_std)

    def rollout(vstate, key):
        def body(vstate, k):
            action = std * jax.random.normal(k, (venv.num_envs, venv.action_size))
            return venv.step(vstate, action), None

        return jax.lax.scan(body, vstate, jax.random.split(key, steps))[0]

    vshard = parallel.state_shardings(jax.eval_shape(venv.reset, keys[0]), mesh, env_axis=0)
    vstate = jax.jit(venv.reset, out_shardings=vshard)(jax.random.PRNGKey(0))
    raw = jax.jit(rollout, in_shardings=(vshard, None), out_shardings=vshard)
    raw = raw.lower(vstate, jax.random.PRNGKey(1)).compile()
    vstate = jax.block_until_ready(raw(vstate, jax.random.PRNGKey(1)))

    train_s, env_s = [], []
    for i in range(args.repeats):  # alternated: adjacent calls see about the same load
        t = time.perf_counter()
        state = jax.block_until_ready(chunk(state))[0]
        train_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        vstate = jax.block_until_ready(raw(vstate, jax.random.PRNGKey(2 + i)))
        env_s.append(time.perf_counter() - t)
    n = args.num_envs * steps
    return {"train": n / min(train_s), "env": n / min(env_s), "compile": compile_s,
            "devices": jax.device_count()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "wildrobot_walk.toml"))
    parser.add_argument("--num-envs", type=int, default=1024, help="total, over all seeds")
    parser.add_argument("--layouts", nargs="+", default=LAYOUTS, help="DEVICESxSEEDS")
    parser.add_argument("--updates", type=int, default=1, help="PPO updates per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each program")
    parser.add_argument("--rounds", type=int, default=1, help="times to run every layout")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per layout")
    parser.add_argument("--devices", type=int, help=argparse.SUPPRESS)  # set in a child
    parser.add_argument("--seeds", type=int, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    if args.devices:  # the child: one layout, one JSON line
        print(json.dumps(measure(args)), flush=True)
        return

    print(f"# {platform.machine()}, {os.cpu_count()} cores, {args.num_envs} envs in all, "
          f"{args.updates} updates per timed call, best of {args.repeats}; "
          f"load {os.getloadavg()[0]:.1f} at start")  # fmt: skip
    print("| devices | seeds | envs per seed | train steps/s | raw env steps/s | compile s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    rates = {layout: [] for layout in args.layouts}  # train steps/s per round, None if it failed
    for i in range(args.rounds):
        for layout in args.layouts[:: -1 if i % 2 else 1]:
            rates[layout].append(run_layout(layout, args))
    if args.rounds > 1:
        summarize(rates, args.layouts[0])


def run_layout(layout: str, args: argparse.Namespace) -> float | None:
    """Measure one layout in a child process, print its row and return its train steps/s."""
    devices, seeds = map(int, layout.split("x"))
    sizes = ["--num-envs", args.num_envs, "--updates", args.updates, "--repeats", args.repeats]
    cmd = [sys.executable, __file__, "--devices", devices, "--seeds", seeds, *sizes]
    cmd = [str(c) for c in cmd + ["--config", args.config, *args.overrides]]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"| {devices} | {seeds} | not done within {args.timeout:.0f} s |", flush=True)
        return None
    if out.returncode != 0:
        print(f"| {devices} | {seeds} | failed: {out.stderr.strip().splitlines()[-1]} |")
        return None
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["devices"] == devices
    print(f"| {devices} | {seeds} | {args.num_envs // seeds} | {r['train']:,.0f} | "
          f"{r['env']:,.0f} | {r['compile']:.1f} |", flush=True)  # fmt: skip
    return r["train"]


def summarize(rates: dict[str, list[float | None]], base: str) -> None:
    """Each layout's median train rate, and its median ratio to `base` within a round."""
    rounds = len(rates[base])
    print(f"\n| layout | train steps/s, median of {rounds} rounds | over {base}, median |")
    print("| --- | ---: | ---: |")
    for layout, runs in rates.items():
        done = [r for r in runs if r is not None]
        ratios = [
            r / b for r, b in zip(runs, rates[base], strict=True) if r is not None and b is not None
        ]
        rate = f"{statistics.median(done):,.0f}" if done else "failed"
        ratio = f"{statistics.median(ratios):.2f}x" if ratios else "-"
        print(f"| {layout} | {rate} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
