"""A policy on the robot side, past its training ranges: plain MuJoCo, one change at a time.

Each condition changes one thing of the robot play.py evaluates in plain MuJoCo (sim_dt 0.002,
MuJoCo's default solver, the NumPy controller from the exported policy, one control step of servo
latency, the training's sensor noise) to a value outside what the policy was trained with
(EnvConfig.randomization, the config's `noise`; the `trained` column says what that was). Each
condition runs the joystick grid (play.GRID) and reports, as play.py defines them: fall rate, mean
absolute forward / lateral / yaw-rate errors, heading drift at zero yaw commands (degrees per
10 s), and the largest share of time a servo spends at its torque limit on any command.

    python benchmarks/robustness.py policies/wildrobot_walk.msgpack
    python benchmarks/robustness.py POLICY --episodes 4 --heading-hold 4    # steering a heading
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import sys
from collections.abc import Callable

import mujoco
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import export  # noqa: E402
from config import ConfigError, override  # noqa: E402
from deploy import Controller  # noqa: E402
from env import EnvConfig  # noqa: E402
from play import GRID, evaluate_mujoco  # noqa: E402
from sim2sim import HOLD_MAX_RATE, Hold, MujocoRobot, heading_joints  # noqa: E402


class MiscalibratedRobot(MujocoRobot):
    """Servos whose zero is off by `offset` rad, a random sign per servo and episode: the
    encoders read the angle minus the offset and a target lands at target plus the offset
    (env.py's joint_offset, at a size it never samples)."""

    def __init__(self, *args, offset: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.offset_size = offset
        self.offset = np.zeros(len(self.qadr))

    def reset(self) -> None:
        super().reset()
        self.offset = self.offset_size * self.rng.choice([-1.0, 1.0], len(self.qadr))

    def sensors(self):
        quat, gyro, q, qd = super().sensors()
        return quat, gyro, q - self.offset, qd

    def apply(self, targets: np.ndarray) -> None:
        super().apply(np.asarray(targets) + self.offset)


@dataclasses.dataclass(frozen=True)
class Condition:
    name: str
    trained: str  # what the policy saw in training (the default EnvConfig)
    config: dict = dataclasses.field(default_factory=dict)  # EnvConfig overrides
    edit: Callable[[mujoco.MjModel, EnvConfig], None] | None = None  # changes the MjModel
    action_delay: int | None = None  # control steps; None: play.py's (the trained maximum)
    offset: float = 0.0  # rad, servo zero error


def _scale_mass(factor: float):
    def edit(model: mujoco.MjModel, _: EnvConfig) -> None:
        model.body_mass[1:] *= factor
        model.body_inertia[1:] *= factor

    return edit


def _payload(kg: float):
    def edit(model: mujoco.MjModel, config: EnvConfig) -> None:
        torso = model.body(config.torso_body).id
        model.body_inertia[torso] *= (model.body_mass[torso] + kg) / model.body_mass[torso]
        model.body_mass[torso] += kg

    return edit


def _servos(kp_factor: float = 1.0, torque: float | None = None):
    def edit(model: mujoco.MjModel, config: EnvConfig) -> None:
        ids = [model.actuator(a).id for a in config.actuators]
        model.actuator_gainprm[ids, 0] *= kp_factor  # position servo: kp * target - kp * q
        model.actuator_biasprm[ids, 1] *= kp_factor
        if torque is not None:
            model.actuator_forcerange[ids] = [-torque, torque]

    return edit


def _slope(degrees: float):
    """A floor tilted about the lateral axis, uphill ahead of the start heading: the same as
    tilting gravity against the flat floor."""

    def edit(model: mujoco.MjModel, _: EnvConfig) -> None:
        g, a = np.linalg.norm(model.opt.gravity), np.radians(degrees)
        model.opt.gravity[:] = [-g * np.sin(a), 0.0, -g * np.cos(a)]

    return edit


CONDITIONS = [
    Condition("nominal", "-"),
    Condition("floor friction 0.3", "0.4 .. 1.0", {"randomization.floor_friction": (0.3, 0.3)}),
    Condition("floor friction 1.5", "0.4 .. 1.0", {"randomization.floor_friction": (1.5, 1.5)}),
    Condition("every link 1.2x heavier", "0.9 .. 1.1x per link", edit=_scale_mass(1.2)),
    Condition("0.4 kg payload on the torso", "-0.1 .. +0.1 kg", edit=_payload(0.4)),
    Condition("servo stiffness 0.7x", "0.9 .. 1.1x", edit=_servos(kp_factor=0.7)),
    Condition("servo stiffness 1.3x", "0.9 .. 1.1x", edit=_servos(kp_factor=1.3)),
    Condition("servo torque limit 3 N m", "4 N m", edit=_servos(torque=3.0)),
    Condition("servo latency 2 steps (40 ms)", "0 .. 1 step", action_delay=2),
    Condition("servo zero errors 0.06 rad", "-0.03 .. 0.03 rad", offset=0.06),
    Condition(
        "sensor noise 2x",
        "1x",
        {"noise.gravity": 0.07, "noise.gyro": 0.1, "noise.joint_pos": 0.02, "noise.joint_vel": 1.0},
    ),  # fmt: skip
    Condition("3 degree slope, uphill ahead", "flat", edit=_slope(3.0)),
    Condition("3 degree slope, downhill ahead", "flat", edit=_slope(-3.0)),
]


def run_condition(env_config: EnvConfig, ctrl: Controller, cond: Condition, episodes: int,
                  hold: Hold | None, seed: int = 0) -> dict:  # fmt: skip
    config = override(env_config, cond.config) if cond.config else env_config
    kwargs = {"seed": seed, "action_delay": cond.action_delay}
    robot = (MiscalibratedRobot(config, offset=cond.offset, **kwargs) if cond.offset
             else MujocoRobot(config, **kwargs))  # fmt: skip
    if cond.edit is not None:
        cond.edit(robot.model, config)
    with contextlib.redirect_stdout(io.StringIO()):  # its timing line
        rows = evaluate_mujoco(config, ctrl, GRID, episodes, seed, hold=hold, robot=robot)
    worst = max(rows, key=lambda r: r["at_limit"])
    return {
        "fall_rate": float(np.mean([r["fall_rate"] for r in rows])),
        **{
            k: float(np.nanmean([r[k] for r in rows]))
            for k in ("vel_err", "lat_err", "yaw_err", "drift_deg")
        },  # fmt: skip
        "at_limit": worst["at_limit"],
        "at_limit_servo": worst["at_limit_servo"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("policy", help="checkpoint or policy file written by ppo.py or amp.py")
    parser.add_argument("--episodes", type=int, default=4, help="per grid command and condition")
    parser.add_argument("--heading-hold", type=float, metavar="GAIN",
                        help="steer a heading (deploy.HeadingHold), as play.py")  # fmt: skip
    parser.add_argument("--max-rate", type=float, default=HOLD_MAX_RATE, metavar="RAD_PER_S",
                        help="largest yaw-rate command of the heading hold")  # fmt: skip
    parser.add_argument("--only", nargs="+", metavar="NAME", help="conditions whose name "
                        "contains one of these words")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.max_rate > 0:
        parser.error(f"--max-rate wants a positive yaw rate (rad/s): {args.max_rate}")
    try:
        config, actor_vars, stats = export.load_checked(args.policy)
        hold = (
            Hold(args.heading_hold, heading_joints(config.env), args.max_rate)
            if args.heading_hold
            else None
        )
    except ConfigError as e:
        raise SystemExit(f"robustness.py: error: {e}") from None
    ctrl = export.exported_controller(config, actor_vars, stats)  # the file the robot runs
    conditions = [c for c in CONDITIONS
                  if not args.only or any(w in c.name for w in args.only)]  # fmt: skip
    steering = (
        f"heading hold, gain {args.heading_hold}, at most {args.max_rate} rad/s"
        if hold
        else "yaw-rate commands"
    )
    print(f"{args.policy}: plain MuJoCo, the joystick grid ({len(GRID)} commands x "
          f"{args.episodes} episodes of {config.env.episode_length * config.env.ctrl_dt:.0f} s), "
          f"{steering}")  # fmt: skip
    print("| condition | trained | fall rate | fwd err m/s | lat err m/s | yaw err rad/s | "
          "heading drift deg/10 s | most time at torque limit |")  # fmt: skip
    print("| --- | --- |" + " ---: |" * 6)
    for cond in conditions:
        r = run_condition(config.env, ctrl, cond, args.episodes, hold)
        print(f"| {cond.name} | {cond.trained} | {r['fall_rate']:.2f} | {r['vel_err']:.3f} | "
              f"{r['lat_err']:.3f} | {r['yaw_err']:.3f} | {r['drift_deg']:.1f} | "
              f"{r['at_limit']:.0%} ({r['at_limit_servo']}) |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
