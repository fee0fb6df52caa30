"""AMP training throughput next to PPO's at the same batch, measured in the same process.

Both programs train WildRobot from the AMP config (configs/wildrobot_amp.toml: the walking
config plus [amp]); PPO's is the same config without the discriminator, the motion features and
the reference starts. Each is compiled ahead of time and warmed up on its own output, then they
are timed alternately (other processes may share the CPU): throughputs are the best call, the
ratio the median over adjacent pairs. Target: AMP at least 0.8x PPO's env steps/s.

    python benchmarks/amp_speed.py                     # 512 envs, the AMP config
    python benchmarks/amp_speed.py --num-envs 256 1024 amp.disc_steps=2
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import amp  # noqa: E402
import ppo  # noqa: E402


def compiled(trainer: ppo.Trainer) -> tuple[object, object, float]:
    """(state after a warm-up chunk, compiled chunk, compile seconds incl. init)."""
    t0 = time.perf_counter()
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    chunk = jax.jit(trainer.train_chunk).lower(state).compile()  # AOT: no silent recompiles
    seconds = time.perf_counter() - t0
    return jax.block_until_ready(chunk(state))[0], chunk, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=amp.DEFAULT_CONFIG)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[512])
    parser.add_argument("--updates", type=int, default=2, help="updates per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each program")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()

    base = amp.load_config(args.config, args.overrides)
    prepared = amp.prepare(base)
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
        f"({jax.default_backend()}); unroll {base.unroll_length}, {base.num_epochs} epochs x "
        f"{base.num_minibatches} minibatches; discriminator {base.amp.disc_hidden}, "
        f"{base.amp.disc_steps} steps of {base.amp.disc_batch_size} + {base.amp.disc_batch_size}"
        f" per update; {len(prepared.reference.pairs)} reference transitions; "
        f"{args.updates} updates per timed call, best of {args.repeats}"
    )
    print("| envs | PPO steps/s | AMP steps/s | AMP / PPO | PPO compile s | AMP compile s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in args.num_envs:
        config = amp.load_config(
            args.config, args.overrides + [f"num_envs={n}", f"updates_per_chunk={args.updates}"]
        )
        programs = {
            "ppo": compiled(ppo.make_train(config, prepared.env)),
            "amp": compiled(amp.make_train(config, *prepared)),
        }
        seconds = {name: [] for name in programs}
        for _ in range(args.repeats):
            for name, (state, chunk, _) in programs.items():
                t = time.perf_counter()
                state = jax.block_until_ready(chunk(state))[0]
                seconds[name].append(time.perf_counter() - t)
                programs[name] = (state, chunk, programs[name][2])
        steps = n * config.unroll_length * args.updates
        ppo_sps, amp_sps = (steps / min(seconds[k]) for k in ("ppo", "amp"))
        ratio = float(np.median(np.array(seconds["ppo"]) / np.array(seconds["amp"])))
        print(
            f"| {n} | {ppo_sps:,.0f} | {amp_sps:,.0f} | {ratio:.3f} | "
            f"{programs['ppo'][2]:.1f} | {programs['amp'][2]:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
