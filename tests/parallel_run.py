"""A PointMass training run on a chosen number of CPU devices or processes, for test_parallel.py.

    python tests/parallel_run.py --devices 2 RUN_DIR:full OTHER_DIR:resume
    python tests/parallel_run.py --coordinator 127.0.0.1:PORT --num-processes 2 --process-id 0 ...

Each RUN_DIR:MODE trains in RUN_DIR: `full` (every update), `stop` (stops after update 2, a
checkpoint there) or `resume` (continues RUN_DIR to the end); `full` and `resume` leave the final
state's leaves in RUN_DIR/state.npz. The device count must be set before JAX starts, hence a
process of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--devices", type=int, default=1, help="CPU devices of this process")
parser.add_argument("--coordinator")
parser.add_argument("--num-processes", type=int)
parser.add_argument("--process-id", type=int)
parser.add_argument("--late", type=float, default=0.0, help="seconds this process starts late")
parser.add_argument("runs", nargs="+", metavar="RUN_DIR:MODE")
args = parser.parse_args()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import jax  # noqa: E402
import numpy as np  # noqa: E402

import parallel  # noqa: E402

parallel.use_cpu_devices(args.devices)  # before JAX starts: what driver.main does

if args.coordinator:  # before anything touches a device (probe_envs makes arrays on import)
    parallel.initialize(args.coordinator, args.num_processes, args.process_id)

import probe_envs  # noqa: E402

import ppo  # noqa: E402
from env import EnvConfig  # noqa: E402

if args.coordinator:  # WildRobot's MJX arrays go on this process's device, not process 0's
    robot = ppo.default_env(EnvConfig())
    robot.forward_states(robot.mj_model.qpos0[None], np.zeros((1, robot.mj_model.nv)))
time.sleep(args.late)  # compiling later than the others: more than gloo's 30 s once was fatal

# 4 updates of 32 envs x 8 steps, 2 seeds, a checkpoint every 2 updates.
CONFIG = {"num_envs": 32, "unroll_length": 8, "num_epochs": 2, "num_minibatches": 4,
          "learning_rate": 3e-3, "actor_hidden": (16, 16), "critic_hidden": (16, 16),
          "updates_per_chunk": 2, "checkpoint_every": 2, "total_steps": 4 * 32 * 8,
          "num_seeds": 2}  # fmt: skip

config = ppo.load_config(overrides=CONFIG)
for run in args.runs:
    run_dir, mode = run.rsplit(":", 1)
    stop_after = 2 if mode == "stop" else None
    state = ppo.run(
        config, run_dir, probe_envs.PointMass(), resume=mode == "resume", stop_after=stop_after
    )
    host = parallel.to_host(state)
    if mode != "stop" and parallel.is_writer():
        leaves = jax.tree_util.tree_flatten_with_path(host)[0]
        np.savez(
            os.path.join(run_dir, "state.npz"), **{jax.tree_util.keystr(p): x for p, x in leaves}
        )
print(f"devices {jax.device_count()} processes {jax.process_count()}")
