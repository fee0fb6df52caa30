"""Export a trained actor for the robot: a NumPy policy file for deploy.py and an ONNX model.

Both include the observation normalizer, and both give the deterministic action clip(mean, -1, 1).

    python export.py runs/<run>/policy.msgpack --out policies/wildrobot_walk
    # -> policies/wildrobot_walk.npz (deploy.Controller.load) and policies/wildrobot_walk.onnx
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

import numpy as np

import ppo
from config import ConfigError
from deploy import Controller
from env import WildRobotEnv
from wrappers import RunningStats, normalizer_scale


def actor_layers(actor_vars: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of each Dense layer of a ppo.Actor, input to output."""
    p = actor_vars["params"]
    hidden = sorted((k for k in p if k.startswith("hidden_")), key=lambda k: int(k.split("_")[1]))
    return [(np.asarray(p[k]["kernel"]), np.asarray(p[k]["bias"])) for k in hidden + ["mean"]]


def write_npz(path: str, config: ppo.PPOConfig, actor_vars: Any, stats: RunningStats) -> None:
    """The deploy.py policy file: weights, normalizer and the control loop's constants."""
    env = WildRobotEnv(config.env)
    layers = actor_layers(actor_vars)
    arrays = {f"kernel_{i}": k for i, (k, _) in enumerate(layers)}
    arrays |= {f"bias_{i}": b for i, (_, b) in enumerate(layers)}
    np.savez(
        path,
        num_layers=len(layers),
        activation=config.activation,
        obs_mean=np.asarray(stats.mean),
        obs_std=np.asarray(normalizer_scale(stats)),
        obs_names=[n for n, _ in env.actor_layout.pieces],
        obs_sizes=[s for _, s in env.actor_layout.pieces],
        actuators=list(config.env.actuators),
        home=np.asarray(env.home_joints),
        joint_lo=np.asarray(env.joint_lo),
        joint_hi=np.asarray(env.joint_hi),
        action_scale=config.env.action_scale,
        action_filter_alpha=config.env.action_filter_alpha,
        ctrl_dt=config.env.ctrl_dt,
        gait_frequency=config.env.gait_frequency,
        **arrays,
    )


def exported_controller(config: ppo.PPOConfig, actor_vars: Any, stats: RunningStats,
                        controller: type[Controller] = Controller) -> Controller:  # fmt: skip
    """`controller` (deploy.Controller or a subclass) loaded from this policy's .npz, written to a
    temporary file: evaluations run the file the robot runs, not JAX."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "policy.npz")
        write_npz(path, config, actor_vars, stats)
        return controller.load(path)


def write_onnx(path: str, config: ppo.PPOConfig, actor_vars: Any, stats: RunningStats) -> None:
    """ONNX model with input "obs" (batch, obs_size) and output "action" (batch, action_size)."""
    import onnx  # noqa: PLC0415 - export-only dependencies
    from jax2onnx import to_onnx  # noqa: PLC0415

    obs_size = actor_vars["params"]["hidden_0"]["kernel"].shape[0]
    model = to_onnx(
        ppo.make_policy(config, actor_vars, stats),
        [("batch", obs_size)],
        model_name="wildrobot_actor",
        input_names=["obs"],
        output_names=["action"],
    )
    onnx.save_model(model, path)


def load_checked(path: str, seed: int = 0) -> tuple[ppo.PPOConfig, Any, RunningStats]:
    """ppo.load_policy_params, and a check that the network fits its config's robot.

    A policy whose input or output size differs from the config's observation or action size
    would run until the robot's first step; ConfigError instead, naming the file.
    """
    config, actor_vars, stats = ppo.load_policy_params(path, seed)
    env = WildRobotEnv(config.env)
    layers = actor_layers(actor_vars)
    inputs, outputs = layers[0][0].shape[0], layers[-1][0].shape[1]
    sizes = (inputs, outputs, np.shape(stats.mean))
    if sizes != (env.obs_size, env.action_size, (env.obs_size,)):
        raise ConfigError(
            f"policy '{path}' maps {inputs} observations (normalizer: {np.shape(stats.mean)}) to "
            f"{outputs} actions, but the robot of its config has {env.obs_size} observations and "
            f"{env.action_size} actions: was it trained with other code or another config?"
        )
    return config, actor_vars, stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint or policy file written by ppo.py")
    parser.add_argument("--out", required=True, help="output path without extension")
    parser.add_argument("--seed", type=int, default=0, help="which seed of a multi-seed run")
    parser.add_argument("--no-onnx", action="store_true")
    args = parser.parse_args(argv)

    try:  # everything is checked before anything is written
        config, actor_vars, stats = load_checked(args.checkpoint, args.seed)
    except ConfigError as e:
        raise SystemExit(f"export.py: error: {e}") from None
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_npz(args.out + ".npz", config, actor_vars, stats)
    print(f"wrote {args.out}.npz")
    if not args.no_onnx:
        write_onnx(args.out + ".onnx", config, actor_vars, stats)
        print(f"wrote {args.out}.onnx")


if __name__ == "__main__":
    main()
