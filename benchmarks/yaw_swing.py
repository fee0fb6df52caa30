"""Where a policy's yaw-rate error comes from: the heading's rate split into frequency bands.

play.py's instantaneous yaw-rate error counts the stride's swing of the root; its net error (the
heading's change over 5 s) does not. This splits the swing further. Per command, in plain MuJoCo
through the NumPy controller (as play.py), over the last 5 s of each surviving episode: the mean
absolute error of the heading's rate (finite differences at the control rate), the share of that
signal's power (its mean removed) in four bands set by the gait clock's frequency f, and the mean
absolute change of the policy's action per control step (action units: a change of 1 moves a
servo target by `action_scale` rad). Bands: below f/3 (slow drift and turning), f/3 to 2.5 f (the
stride and its second harmonic), 2.5 f to 5.5 f (the next three harmonics), above 5.5 f (chatter
from one control step to the next).

With --stance, a second table asks where the swing turns: in single support (one foot's sole
geoms touching the floor, the other's not), the root's heading can only change by the stance
foot turning on the floor or by the stance leg's joints (no hip yaw here) turning the root over
it. Per command: the share of the last 5 s in single support, the stance foot's contact points
(MuJoCo contacts of its sole geoms; WildRobot's two capsules touch at two points each when the
foot is flat, as in the home pose), the stance foot's mean absolute yaw rate on half or fewer and
on more than half of the points it has in the home pose, and the share of the root's yaw-rate
variance the stance foot carries (cov(root, foot) / var(root); the rest is the leg turning the
root over the foot).

    python benchmarks/yaw_swing.py policies/wildrobot_walk.msgpack
    python benchmarks/yaw_swing.py POLICY --commands 0.3 0,0,1 --episodes 8
    python benchmarks/yaw_swing.py POLICY --commands 0.3 -0.3 0,0.3,0 --stance
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import export  # noqa: E402
from config import ConfigError  # noqa: E402
from deploy import Controller  # noqa: E402
from play import GRID, SETTLE_STEPS, command_args, command_triples, parse_commands  # noqa: E402
from sim2sim import MujocoRobot, heading, run_mujoco_episode  # noqa: E402

MOVING = [c for c in GRID if any(c)]  # the grid's rows but standing still
BAND_EDGES = (1 / 3, 2.5, 5.5)  # in multiples of the gait frequency
BAND_NAMES = ("below f/3", "f/3-2.5f", "2.5f-5.5f", "above 5.5f")


def band_shares(signal: np.ndarray, dt: float, gait_frequency: float) -> np.ndarray:
    """Power of `signal` (mean removed) in each band of BAND_EDGES x gait_frequency; sums to 1."""
    spectrum = np.abs(np.fft.rfft(signal - signal.mean())) ** 2
    freqs = np.fft.rfftfreq(len(signal), dt)
    band = np.searchsorted(np.asarray(BAND_EDGES) * gait_frequency, freqs, side="right")
    power = np.bincount(band, weights=spectrum, minlength=len(BAND_EDGES) + 1)
    return power / max(power.sum(), 1e-12)


class RecordingController(Controller):
    """A Controller that keeps every action it sends."""

    def reset(self, phase: float = 0.0) -> None:
        super().reset(phase)
        self.actions = []

    def step(self, *args, **kwargs) -> np.ndarray:
        targets = super().step(*args, **kwargs)
        self.actions.append(self.last_action.copy())
        return targets


def measure(config, ctrl: RecordingController, command, episodes: int, seed: int = 0) -> dict:
    """The mean over surviving episodes of the heading-rate error, band shares and action change."""
    robot, rng = MujocoRobot(config, seed=seed), np.random.default_rng(seed)
    dt, rows = config.ctrl_dt, []
    for _ in range(episodes):
        ep = run_mujoco_episode(robot, ctrl, command, rng.uniform(0, 2 * np.pi))
        if not ep["alive"][-1]:
            continue  # a fall (the episode ends there): play.py counts those
        rate = np.gradient(np.unwrap(ep["heading"]), dt)[SETTLE_STEPS:]
        actions = np.asarray(ctrl.actions)[SETTLE_STEPS:]
        rows.append((np.abs(rate - command[2]).mean(),
                     band_shares(rate, dt, config.gait_frequency),
                     np.abs(np.diff(actions, axis=0)).mean()))  # fmt: skip
    if not rows:
        return {"episodes": 0}
    err, shares, change = zip(*rows, strict=True)
    return {"episodes": len(rows), "error": float(np.mean(err)),
            "shares": np.mean(shares, axis=0), "action_change": float(np.mean(change))}  # fmt: skip


def sole_points(robot: MujocoRobot) -> np.ndarray:
    """(nfeet,) contact points between each foot's sole geoms and anything else."""
    geoms = robot.data.contact.geom[: robot.data.ncon]
    soles = robot.soles.reshape(len(robot.feet), -1)
    return np.array([np.isin(geoms, foot).any(axis=1).sum() for foot in soles])


def stance(config, ctrl: Controller, command, episodes: int, seed: int = 0) -> dict:
    """Single support over the last 5 s of surviving episodes: how the stance foot stands and
    turns (module docstring, --stance)."""
    robot, rng = MujocoRobot(config, seed=seed), np.random.default_rng(seed)
    feet = robot.model.site_bodyid[robot.feet]
    robot.reset()
    flat = sole_points(robot).max()  # a foot's contact points standing flat in the home pose
    root_rate, foot_rate, points = [], [], []
    for _ in range(episodes):
        rows = []

        def record(robot, rows=rows):
            rot = robot.data.xmat[feet].reshape(-1, 3, 3)
            rows.append((robot.heading(), *heading(rot), *sole_points(robot)))

        ep = run_mujoco_episode(robot, ctrl, command, rng.uniform(0, 2 * np.pi), frames=record)
        if not ep["alive"][-1]:
            continue
        r = np.asarray(rows)
        rates = np.gradient(np.unwrap(r[:, : 1 + len(feet)], axis=0), config.ctrl_dt, axis=0)
        pts = r[:, 1 + len(feet) :]
        single = (pts > 0).sum(axis=1) == 1
        single[:SETTLE_STEPS] = False
        on = np.argmax(pts[single] > 0, axis=1)  # which foot stands
        root_rate.append(rates[single, 0])
        foot_rate.append(rates[single, 1 + on])
        points.append(pts[single, on])
    if not root_rate:
        return {"episodes": 0}
    root, foot, pts = (np.concatenate(x) for x in (root_rate, foot_rate, points))
    tilted = pts <= flat / 2  # half a flat foot's points or fewer: heel, toe or edge
    n = len(root_rate) * (config.episode_length - SETTLE_STEPS)

    def mean(x):  # nan where there was no single support
        return float(np.mean(x)) if len(x) else float("nan")

    carried = np.cov(root, foot)[0, 1] / max(root.var(ddof=1), 1e-12) if len(root) > 2 else np.nan
    return {"episodes": len(root_rate), "single": len(root) / n, "points": mean(pts),
            "tilted": mean(tilted), "foot_tilted": mean(np.abs(foot[tilted])),
            "foot_flat": mean(np.abs(foot[~tilted])), "root": mean(np.abs(root)),
            "carried": float(carried)}  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="a policy.msgpack (or checkpoint) to evaluate")
    parser.add_argument("--commands", nargs="+",
                        help="forward m/s, or forward,lateral,yaw (default: the grid's moving "
                             "rows)")  # fmt: skip
    parser.add_argument("--episodes", type=int, default=4, help="10 s episodes a command")
    parser.add_argument("--seed", type=int, default=0, help="which seed of a multi-seed run "
                        "(every seed is measured on the same episodes)")  # fmt: skip
    parser.add_argument("--stance", action="store_true",
                        help="also how the stance foot stands and turns (see above)")  # fmt: skip
    args = parser.parse_args(command_args(argv))
    try:
        commands = command_triples(parse_commands(args.commands) if args.commands else MOVING)
    except ValueError:
        parser.error(f"--commands wants numbers or forward,lateral,yaw triples: {args.commands}")
    try:
        config, actor_vars, stats = export.load_checked(args.policy, args.seed)
    except ConfigError as e:
        raise SystemExit(f"yaw_swing.py: error: {e}") from None
    ctrl = export.exported_controller(config, actor_vars, stats, RecordingController)
    f = config.env.gait_frequency
    print(f"Plain MuJoCo, {args.episodes} episodes a command, gait clock f = {f:g} Hz; power "
          "shares of the heading's rate by band")  # fmt: skip
    print("| command (fwd, lat, yaw) | heading-rate error rad/s | "
          + " | ".join(BAND_NAMES) + " | action change per step |")  # fmt: skip
    print("| --- | ---: | " + "---: | " * len(BAND_NAMES) + "---: |")
    for cmd in commands:
        r = measure(config.env, ctrl, tuple(float(c) for c in cmd), args.episodes)
        name = ", ".join(f"{c:.2f}" for c in cmd)
        if not r["episodes"]:
            print(f"| {name} | every episode fell |" + " |" * (len(BAND_NAMES) + 1))
            continue
        shares = " | ".join(f"{s:.2f}" for s in r["shares"])
        print(f"| {name} | {r['error']:.3f} | {shares} | {r['action_change']:.3f} |")
    if args.stance:
        print("\nSingle support: the stance foot's contact points and yaw rate (rad/s), and how "
              "much of the root's yaw rate it carries")  # fmt: skip
        print("| command (fwd, lat, yaw) | single support | contact points | on half or fewer | "
              "foot yaw rate, half or fewer | foot yaw rate, more | root yaw rate | carried by "
              "the foot |")  # fmt: skip
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for cmd in commands:
            r = stance(config.env, ctrl, tuple(float(c) for c in cmd), args.episodes)
            name = ", ".join(f"{c:.2f}" for c in cmd)
            if not r["episodes"]:
                print(f"| {name} | every episode fell |" + " |" * 6)
                continue
            print(f"| {name} | {r['single']:.2f} | {r['points']:.1f} | {r['tilted']:.2f} | "
                  f"{r['foot_tilted']:.3f} | {r['foot_flat']:.3f} | {r['root']:.3f} | "
                  f"{r['carried']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
