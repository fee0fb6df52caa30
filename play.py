"""Evaluate a saved policy per command: tracking, falls, heading drift, torques, slip, symmetry.

Two evaluations of the same policy over a list of commands (forward m/s, or forward, lateral m/s
and yaw rad/s; `--grid` for the joystick grid), by the same definitions:
  * jax:    the MJX training environment (batched) with the policy's own domain randomization
            (its training pushes included: `--set` makes two policies' conditions the same);
  * mujoco: sim-to-sim in plain MuJoCo (the C engine, no JAX env) at sim_dt 0.002 with MuJoCo's
            default solver settings, the policy run by deploy.py from the exported .npz: the
            code path the robot itself uses (sensor readings in, servo targets out).
It can also render a video of the robot walking (headless; needs an OSMesa or EGL library) and plot
its velocity tracking.

    python play.py runs/<run>/policy.msgpack                            # both tables
    python play.py POLICY --episodes 16 --commands 0 0.1 0.2 0.3 0.4 0.5
    python play.py POLICY --grid                                        # joystick commands
    python play.py POLICY --commands 0.3,0.2,0 -0.3,0,0 0,0,-1          # forward,lateral,yaw
    python play.py POLICY --pushes 0.3 0.4 0.5             # + fall rate vs push size, every 3 s
    python play.py POLICY --friction 0.4                   # a slippery floor in both simulators
    python play.py POLICY --grid --heading-hold 2          # the yaw command steers a heading
    python play.py POLICY --grid --heading-hold 4 --max-rate 1.5   # ... with up to 1.5 rad/s
    python play.py POLICY --set randomization.push_velocity=0.1,0.6   # change the env config

Per command: forward, lateral (m/s) and yaw-rate (rad/s) errors over the last 5 s of surviving
episodes (instantaneous, so gait oscillation counts), and the net yaw-rate error (the heading's
change over those 5 s per second, against the command: the stride's yaw swing cancels out, what is
left is how far the robot turns too much or too little); torso twist (the mean absolute yaw rate
of the IMU's body against the root over the same 5 s: the waist turning the chest, which the
robot's gyro reads); fall rate; heading drift (degrees per
10 s, zero-yaw commands only: the change of the root's yaw over the episode); mean and max absolute
servo torque; the largest share of time any servo spends at its torque limit (|force| >= 99% of
forcerange); left/right balance (mean absolute torque of the servos named left_* over those named
right_*, and their swing: the summed standard deviation of their angles over the last 5 s); power;
foot slip. With --heading-hold, both simulators run deploy.HeadingHold: the joystick's yaw rate
turns a heading target and the policy gets the yaw rate that heading calls for (at most
--max-rate; past the training range the policy extrapolates); errors are still measured against
the joystick's command.

    python play.py POLICY --video out/walk.gif --plot out/tracking.png  # render + plot (mujoco)
"""

from __future__ import annotations

import argparse
import ctypes.util
import dataclasses
import os
import re
import sys
import time
from typing import NamedTuple

# MuJoCo picks its OpenGL backend when first imported: without a display, render offscreen through
# OSMesa if its library is installed (if not, --video says what to install).
if not os.environ.get("DISPLAY") and ctypes.util.find_library("OSMesa"):
    os.environ.setdefault("MUJOCO_GL", "osmesa")

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

import export
import ppo
from config import ConfigError, check, override, parse_overrides
from deploy import Controller, heading_hold_rate
from env import AT_LIMIT, EnvConfig, WildRobotEnv
from sim2sim import (
    HOLD_MAX_RATE,
    Hold,
    MujocoRobot,
    foot_slip,
    heading,
    heading_joints,
    run_mujoco_episode,
)

SETTLE_STEPS = 250  # tracking error is measured over the last 5 s of a 10 s episode
# The joystick grid (forward m/s, lateral m/s, yaw rad/s): each axis alone, both ends, and mixes.
GRID = [(0.0, 0.0, 0.0), (0.3, 0.0, 0.0), (0.6, 0.0, 0.0), (-0.3, 0.0, 0.0), (0.0, 0.3, 0.0),
        (0.0, -0.3, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, -1.0), (0.3, 0.2, 0.0), (0.3, 0.0, 0.5),
        (0.3, -0.2, -0.5)]  # fmt: skip


def command_args(argv: list[str] | None) -> list[str]:
    """argv (None: the command line's) with negative command triples ("-0.3,0,0") marked as
    values, not options: argparse takes a word that starts with "-" for an option unless it is a
    plain number or holds a space, so such a word gets a leading space (float() ignores it)."""
    triple = re.compile(r"-\d*\.?\d+(,-?\d*\.?\d+)+")
    return [" " + a if triple.fullmatch(a) else a for a in (sys.argv[1:] if argv is None else argv)]


def parse_commands(strings) -> list:
    """Command-line commands: "0.3" (forward m/s) or "0.3,0.2,0" (forward, lateral, yaw); raises
    ValueError on anything else."""
    commands = [tuple(float(v) for v in c.split(",")) if "," in c else float(c) for c in strings]
    command_triples(commands)
    return commands


def command_triples(commands) -> np.ndarray:
    """(n, 3) commands from forward speeds or (forward, lateral, yaw) triples."""
    triples = [(c, 0.0, 0.0) if np.ndim(c) == 0 else tuple(c) for c in commands]
    if any(len(t) != 3 for t in triples):
        raise ValueError(f"a command is a forward speed or 3 numbers: {commands}")
    return np.asarray(triples, np.float32)


# ---------------------------------------------------------------------------------------------
# The MJX environment
# ---------------------------------------------------------------------------------------------


def evaluate_jax(
    env_config: EnvConfig, policy, commands, episodes: int, seed: int = 0, hold: Hold | None = None
):
    """One row per command: tracking error, fall rate, episode length, torque, power, foot slip."""
    config = override(env_config, {"command_resample_seconds": 1e6, "zero_command_prob": 0.0})
    env = WildRobotEnv(config)
    steps = config.episode_length
    commands = command_triples(commands)
    cmds = jnp.repeat(jnp.asarray(commands), episodes, axis=0)
    sole_contact = env.critic_layout.slice("foot_contact")
    feet_vel = env.critic_layout.slice("feet_vel")
    ids = env.ids
    yaw_qpos = ids.qpos[jnp.asarray(hold.yaw_joints if hold else (), jnp.int32)]

    def legs_heading(data):
        rot = data.site_xmat[:, ids.imu]
        return jnp.arctan2(rot[:, 1, 0], rot[:, 0, 0]) - data.qpos[:, yaw_qpos].sum(-1)

    @jax.jit
    def run(key):
        keys = jax.random.split(key, cmds.shape[0])
        state = jax.vmap(env.set_command)(jax.vmap(env.reset)(keys), cmds)
        target = legs_heading(state.data)

        def body(carry, _):
            state, alive, target = carry
            if hold is not None:  # the policy gets the yaw rate the heading target calls for
                target, rate = heading_hold_rate(target, legs_heading(state.data), cmds[:, 2],
                                                 config.ctrl_dt, hold.gain, hold.max_rate,
                                                 hold.max_lead)  # fmt: skip
                state = jax.vmap(env.set_command)(state, cmds.at[:, 2].set(rate))
            state = jax.vmap(env.step)(state, policy(state.obs))
            alive = alive & ~state.terminated
            force = state.data.actuator_force[:, env.ids.actuators]
            obs = state.critic_obs
            root_rot = state.data.xmat[:, ids.root]  # yaw rate in the root frame, as env.py
            cvel = state.data.cvel
            yaw_rate = jnp.einsum("nij,ni->nj", root_rot, cvel[:, ids.root, :3])[:, 2]
            out = {
                "alive": alive,
                "vel_err": state.metrics["forward_velocity_error"],
                "lat_err": state.metrics["lateral_velocity_error"],
                "yaw_err": jnp.abs(yaw_rate - cmds[:, 2]),  # against the joystick
                "twist": jnp.abs(cvel[:, ids.imu_body, 2] - cvel[:, ids.root, 2]),  # world z
                "heading": state.data.xmat[:, env.ids.root],  # reduced to the yaw below
                "force": force,
                "joints": state.data.qpos[:, ids.qpos],
                "power": jnp.abs(force * state.data.qvel[:, env.ids.qvel]).sum(-1),
                "slip": foot_slip(obs[:, feet_vel], obs[:, sole_contact], env.nfeet),
            }
            return (state, alive, target), out

        alive0 = jnp.ones(cmds.shape[0], bool)
        return jax.lax.scan(body, (state, alive0, target), None, steps)[1]

    t0 = time.perf_counter()
    out = jax.tree.map(np.asarray, run(jax.random.key(seed)))
    out["heading"] = heading(out["heading"])
    print(f"(jax evaluation: {time.perf_counter() - t0:.0f} s including compile)")
    servos = Servos(env.config.actuators, env.mj_model.actuator_forcerange[env.ids.actuators, 1])
    return summarize(out, commands, episodes, servos, env.config.ctrl_dt)


# ---------------------------------------------------------------------------------------------
# Plain MuJoCo (sim2sim.py), with the deployed controller
# ---------------------------------------------------------------------------------------------


def evaluate_mujoco(
    env_config: EnvConfig, ctrl: Controller, commands, episodes: int, seed=0, hold=None, robot=None
):
    """evaluate_jax's rows from plain MuJoCo; `robot`: a MujocoRobot to use instead of a new one."""
    robot = robot or MujocoRobot(env_config, seed=seed)
    steps = env_config.episode_length
    rng = np.random.default_rng(seed)
    commands = command_triples(commands)
    n = len(commands) * episodes
    keys = ("alive", "vel_err", "lat_err", "yaw_err", "twist", "heading", "power", "slip")
    out = {k: np.zeros((steps, n)) for k in keys}
    out["force"] = np.zeros((steps, n, len(robot.actuators)))
    out["joints"] = np.zeros((steps, n, len(robot.actuators)))
    t0 = time.perf_counter()
    for i, (cmd, _) in enumerate((c, e) for c in commands for e in range(episodes)):
        ep = run_mujoco_episode(robot, ctrl, tuple(cmd), rng.uniform(0, 2 * np.pi), hold=hold)
        for k in out:
            out[k][: len(ep[k]), i] = ep[k]
    print(f"(mujoco evaluation: {time.perf_counter() - t0:.0f} s)")
    out["alive"] = out["alive"].astype(bool)
    limits = robot.model.actuator_forcerange[robot.actuators, 1]
    return summarize(out, commands, episodes, Servos(env_config.actuators, limits),
                     env_config.ctrl_dt)  # fmt: skip


PUSH_COMMANDS = [(0.0, 0.0, 0.0), (0.3, 0.0, 0.0)]  # standing, walking


def push_recovery(env_config: EnvConfig, policy, ctrl: Controller, speeds, every: float,
                  episodes: int, skip=(), seed: int = 0, hold=None) -> dict[str, dict]:  # fmt: skip
    """Fall rate per (push speed, command) in each simulator: a kick of exactly that speed in a
    random direction every `every` seconds, standing and walking, randomization otherwise as
    trained (MJX) or nominal (MuJoCo)."""
    steps = int(round(every / env_config.ctrl_dt))
    table = {"jax": {}, "mujoco": {}}
    for speed in speeds:
        pushed = override(env_config, {"randomization.push_velocity": (speed, speed),
                                       "randomization.push_interval": (every, every)})  # fmt: skip
        if "jax" not in skip:
            rows = evaluate_jax(pushed, policy, PUSH_COMMANDS, episodes, seed, hold)
            for cmd, row in zip(PUSH_COMMANDS, rows, strict=True):
                table["jax"][(speed, cmd)] = row["fall_rate"]
        if "mujoco" not in skip:
            robot, rng = MujocoRobot(env_config, seed=seed), np.random.default_rng(seed)
            for cmd in PUSH_COMMANDS:
                falls = [not run_mujoco_episode(robot, ctrl, cmd, rng.uniform(0, 2 * np.pi),
                                                push=(speed, steps, rng), hold=hold)["alive"][-1]
                         for _ in range(episodes)]  # fmt: skip
                table["mujoco"][(speed, cmd)] = float(np.mean(falls))
    return table


def print_push_table(table: dict[str, dict], speeds, every: float) -> None:
    print(f"\nPush recovery: fall rate with a push every {every:g} s (10 s episodes)")
    print("| push m/s | MJX standing | MJX walking 0.3 m/s | MuJoCo standing | "
          "MuJoCo walking 0.3 m/s |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: |")
    for speed in speeds:
        cells = [table[sim].get((speed, cmd)) for sim in ("jax", "mujoco") for cmd in PUSH_COMMANDS]
        text = " | ".join("-" if c is None else f"{c:.2f}" for c in cells)
        print(f"| {speed:.2f} | {text} |")


# ---------------------------------------------------------------------------------------------
# Tables, video, plot
# ---------------------------------------------------------------------------------------------


class Servos(NamedTuple):
    names: tuple[str, ...]
    limits: np.ndarray  # N m, the upper end of each servo's forcerange


def summarize(out: dict[str, np.ndarray], commands, episodes: int, servos: Servos, dt: float):
    """One row per command from (steps, episodes) arrays; `force` and `joints` (angles) are
    (steps, episodes, servos)."""
    rows = []
    alive = out["alive"]
    force = np.abs(out["force"])
    left = np.array(["left" in n for n in servos.names])
    right = np.array(["right" in n for n in servos.names])
    for i, cmd in enumerate(commands):
        cols = slice(i * episodes, (i + 1) * episodes)
        a = alive[:, cols]
        survived = a[-1]
        late = a[SETTLE_STEPS:] & survived
        f = force[:, cols][a]  # (alive steps, servos)
        at_limit = (
            (f >= AT_LIMIT * servos.limits).mean(0) if len(f) else np.zeros(len(servos.limits))
        )
        per_servo = f.mean(0) if len(f) else np.zeros(len(servos.limits))
        turn = np.unwrap(out["heading"][:, cols], axis=0)
        seconds = len(a) * dt
        drift = np.abs(turn[-1] - turn[0])[survived]
        # Net yaw rate over the last 5 s (heading change / time): the stride's yaw swing cancels.
        net_rate = (turn[-1] - turn[SETTLE_STEPS]) / ((len(a) - 1 - SETTLE_STEPS) * dt)
        net_yaw_err = np.abs(net_rate - cmd[2])[survived]
        # Swing: each joint's standard deviation over an episode's last 5 s (surviving episodes).
        joints, w = out["joints"][SETTLE_STEPS:, cols], late[..., None]
        n = w.sum(0).clip(min=1)
        mean = (joints * w).sum(0) / n
        swing = (np.sqrt(((joints - mean) ** 2 * w).sum(0) / n)[survived].mean(0)
                 if survived.any() else np.full(len(servos.names), np.nan))  # fmt: skip
        rows.append(
            {
                "command": tuple(float(c) for c in cmd),
                "vel_err": _masked_mean(out["vel_err"][SETTLE_STEPS:, cols], late, empty=np.nan),
                "lat_err": _masked_mean(out["lat_err"][SETTLE_STEPS:, cols], late, empty=np.nan),
                "yaw_err": _masked_mean(out["yaw_err"][SETTLE_STEPS:, cols], late, empty=np.nan),
                "net_yaw_err": float(net_yaw_err.mean()) if len(net_yaw_err) else float("nan"),
                "twist": _masked_mean(out["twist"][SETTLE_STEPS:, cols], late, empty=np.nan),
                "fall_rate": float(1 - survived.mean()),
                "length": float(a.sum(0).mean()),
                "drift_deg": float(np.degrees(drift.mean()) * 10.0 / seconds)
                if cmd[2] == 0 and len(drift)
                else float("nan"),
                "torque": float(f.mean()) if len(f) else 0.0,
                "torque_max": float(f.max()) if len(f) else 0.0,
                "at_limit": float(at_limit.max()),
                "at_limit_servo": servos.names[int(at_limit.argmax())],
                "left_right": float(per_servo[left].sum() / per_servo[right].sum())
                if left.any() and right.any() and per_servo[right].sum() > 0
                else float("nan"),
                "swing_left_right": float(swing[left].sum() / swing[right].sum())
                if left.any() and right.any() and swing[right].sum() > 0
                else float("nan"),
                "power": _masked_mean(out["power"][:, cols], a),
                "slip": _masked_mean(out["slip"][:, cols], a),
            }
        )
    return rows


def _masked_mean(x: np.ndarray, mask: np.ndarray, empty: float = 0.0) -> float:
    """Mean of x where mask holds; `empty` where it never does (errors: no episode survived)."""
    return float((x * mask).sum() / mask.sum()) if mask.any() else empty


def print_table(title: str, rows: list[dict[str, float]]) -> None:
    print(f"\n{title}")
    print("| command (fwd, lat, yaw) | fwd err m/s | lat err m/s | yaw err rad/s | net yaw err | "
          "torso twist rad/s | fall rate | "
          "heading drift deg/10 s | mean abs torque N m | max torque | most time at limit | "
          "left/right torque | left/right swing | power W | foot slip m/s |")  # fmt: skip
    print("| --- |" + " ---: |" * 14)
    for r in rows:
        cmd = ", ".join(f"{c:.2f}" for c in r["command"])
        drift = "-" if np.isnan(r["drift_deg"]) else f"{r['drift_deg']:.1f}"
        print(f"| {cmd} | {r['vel_err']:.3f} | {r['lat_err']:.3f} | {r['yaw_err']:.3f} | "
              f"{r['net_yaw_err']:.3f} | {r['twist']:.3f} | {r['fall_rate']:.2f} | {drift} | "
              f"{r['torque']:.2f} | "
              f"{r['torque_max']:.2f} | "
              f"{r['at_limit']:.0%} ({r['at_limit_servo']}) | {r['left_right']:.2f} | "
              f"{r['swing_left_right']:.2f} | "
              f"{r['power']:.2f} | {r['slip']:.3f} |")  # fmt: skip
    keys = ("vel_err", "lat_err", "yaw_err", "net_yaw_err", "twist")
    mean = {k: np.nanmean([r[k] for r in rows]) for k in keys}
    falls = np.mean([r["fall_rate"] for r in rows])
    print(
        f"overall: mean abs error forward {mean['vel_err']:.3f} m/s, lateral "
        f"{mean['lat_err']:.3f} m/s, yaw {mean['yaw_err']:.3f} rad/s (net over 5 s "
        f"{mean['net_yaw_err']:.3f}, torso twist {mean['twist']:.3f}); fall rate {falls:.3f}"
    )


def render_video(env_config: EnvConfig, ctrl: Controller, command, path: str, seconds=None):
    """Render the plain-MuJoCo rollout to a GIF (headless: MUJOCO_GL=osmesa or egl)."""
    from PIL import Image  # noqa: PLC0415 - only needed for videos

    robot = MujocoRobot(env_config, noise=False)
    try:
        renderer = mujoco.Renderer(robot.model, 240, 320)
    except Exception as e:  # noqa: BLE001 - the GL stack reports many kinds of failure
        raise SystemExit(
            f"cannot render headless ({type(e).__name__}: {e}).\n"
            "Install an offscreen GL library, e.g. `apt-get install -y libosmesa6` "
            "(then MUJOCO_GL=osmesa) or `libegl1` with a GPU driver (MUJOCO_GL=egl)."
        ) from None
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = robot.root
    camera.distance, camera.elevation, camera.azimuth = 1.5, -15.0, 120.0
    images, every = [], 2  # 25 frames per second at ctrl_dt 0.02

    def grab(r: MujocoRobot) -> None:
        if int(round(r.data.time / env_config.ctrl_dt)) % every == 0:
            renderer.update_scene(r.data, camera)
            images.append(Image.fromarray(renderer.render()))

    try:
        ep = run_mujoco_episode(robot, ctrl, command, 0.0, frames=grab)
    finally:
        renderer.close()
    frame_ms = int(1000 * env_config.ctrl_dt * every)
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    print(f"wrote {path} ({len(images)} frames)")
    return ep


def plot_tracking(ep: dict[str, np.ndarray], command, dt: float, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    t = np.arange(len(ep["vel"])) * dt
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(t, ep["vel"], label="forward velocity (base frame)")
    ax.plot(t, np.full_like(t, command[0]), "--", label="command")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("m/s")
    ax.legend(loc="lower right")
    ax.set_title("Velocity tracking, plain MuJoCo")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("policy", help="checkpoint or policy file written by ppo.py")
    parser.add_argument(
        "--commands",
        nargs="+",
        default=["0", "0.1", "0.2", "0.3", "0.4", "0.5"],
        help="forward m/s, or forward,lateral,yaw (m/s, m/s, rad/s) per command",
    )
    parser.add_argument("--grid", action="store_true", help="the joystick grid (GRID) instead")
    parser.add_argument("--episodes", type=int, default=8, help="per command")
    parser.add_argument("--skip", choices=["jax", "mujoco"], action="append", default=[])
    parser.add_argument("--video", help="write a GIF of the robot walking (plain MuJoCo)")
    parser.add_argument("--plot", help="write a PNG of velocity tracking (plain MuJoCo)")
    parser.add_argument("--video-command", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0, help="which seed of a multi-seed run")
    parser.add_argument("--pushes", type=float, nargs="+", metavar="M_PER_S",
                        help="also: fall rate vs push size, standing and walking")  # fmt: skip
    parser.add_argument("--push-every", type=float, default=3.0, help="seconds between pushes")
    parser.add_argument("--friction", type=float, help="floor (sliding) friction in both sims")
    parser.add_argument(
        "--heading-hold",
        type=float,
        metavar="GAIN",
        help="steer a heading (deploy.HeadingHold; yaw-rate command per rad of heading error)",
    )
    parser.add_argument("--max-rate", type=float, default=HOLD_MAX_RATE, metavar="RAD_PER_S",
                        help="largest yaw-rate command the heading hold sends (past the "
                        "training range, the policy extrapolates)")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a field of the policy's env config (e.g. "
                        "randomization.push_interval=2,6) in both simulators, as far as each "
                        "uses it")  # fmt: skip
    args = parser.parse_args(command_args(argv))
    if not args.max_rate > 0:
        parser.error(f"--max-rate wants a positive yaw rate (rad/s): {args.max_rate}")
    try:
        commands = GRID if args.grid else parse_commands(args.commands)
    except ValueError:
        parser.error(f"--commands wants numbers or forward,lateral,yaw triples: {args.commands}")

    try:
        config, actor_vars, stats = export.load_checked(args.policy, args.seed)
        if args.set:
            changed = override(config.env, parse_overrides(args.set))
            check(changed)
            config = dataclasses.replace(config, env=changed)
        if args.friction is not None:
            fixed = {"randomization.floor_friction": (args.friction, args.friction)}
            config = dataclasses.replace(config, env=override(config.env, fixed))
        hold = None
        if args.heading_hold is not None:
            hold = Hold(args.heading_hold, heading_joints(config.env), args.max_rate)
    except ConfigError as e:
        raise SystemExit(f"play.py: error: {e}") from None
    ctrl = export.exported_controller(config, actor_vars, stats)  # the file the robot runs
    policy = jax.vmap(ppo.make_policy(config, actor_vars, stats))
    if "jax" not in args.skip:
        rows = evaluate_jax(config.env, policy, commands, args.episodes, hold=hold)
        print_table("MJX environment (training physics, domain randomization on)", rows)
    if "mujoco" not in args.skip:
        rows = evaluate_mujoco(config.env, ctrl, commands, args.episodes, hold=hold)
        print_table("Plain MuJoCo, sim_dt 0.002, default solver, deployed NumPy controller", rows)
    if args.pushes:
        table = push_recovery(config.env, policy, ctrl, args.pushes, args.push_every,
                              args.episodes, args.skip, hold=hold)  # fmt: skip
        print_push_table(table, args.pushes, args.push_every)
    command = (args.video_command, 0.0, 0.0)
    ep = None
    if args.video:
        ep = render_video(config.env, ctrl, command, args.video)
    if args.plot:
        if ep is None:
            ep = run_mujoco_episode(MujocoRobot(config.env, noise=False), ctrl, command, 0.0)
        plot_tracking(ep, command, config.env.ctrl_dt, args.plot)


if __name__ == "__main__":
    main()
