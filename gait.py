"""WildRobot walking clips for AMP: parametric gait, leg inverse kinematics, checks, physics replay.

    python gait.py generate --out data        # kinematic clips -> replayed in physics -> .npz
    python gait.py replay data/kinematic      # how well the simulated robot follows clips
    python gait.py replay data --assist 0     # any clips load_motion reads; assistance off

The gait: the whole-body centre of mass follows a linear inverted pendulum over the stance foot
(sagittal and lateral), on the env's gait clock (EnvConfig.gait_frequency: the left foot swings in
the first half of a cycle, the right in the second, to swing_height * sin(phase) as the feet_phase
reward asks). Newton iterations on MuJoCo's Jacobians place the pelvis (x, y) and the leg joints so
that the centre of mass, both feet and their pitch meet the targets; the pelvis stays level at a
height set per speed, the waist still. Speed 0 is the home keyframe, standing still.

Such a kinematic clip is not dynamically feasible: replayed by the position servos alone the robot
falls within about 2 s at every walking speed. `generate` therefore writes the replayed clips: the
simulated robot's states while a weak virtual spring on the root (Assist, reported) keeps it on
the clip. See data/README.md for the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import mujoco
import numpy as np

import motion
from config import ConfigError
from env import EnvConfig
from robot import load_model

GRAVITY = 9.81


@dataclasses.dataclass(frozen=True)
class GaitConfig:
    """The family of gaits; clock, swing height and home pose come from EnvConfig."""

    speeds: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # m/s forward, one clip each
    seconds: float = 4.0  # length of each clip
    # Longer steps need a lower pelvis: at the home height the trailing leg would have to be
    # straight at 0.5 m/s, and the hip has only 5 degrees of extension.
    height_per_speed: float = 0.05  # m of pelvis lowering per m/s, from the home height


@dataclasses.dataclass(frozen=True)
class Tolerances:
    """What check_clip accepts."""

    floor: float = 0.001  # m a sole's lowest point may be below the floor
    on_floor: float = 0.002  # m: a foot whose lowest sole point is this low is standing
    stance_drift: float = 0.002  # m a standing foot's site may move horizontally from touchdown
    joint_range: float = 1e-6  # rad beyond the model's jnt_range


KINEMATIC = Tolerances()
# Replayed clips carry the training physics' soft contacts (sim_dt 0.005, MuJoCo's default
# solref): soles sink a few mm at touchdown, a rocking foot's site moves, and a joint limit gives
# a little under load. The policy's own states look the same.
REPLAYED = Tolerances(floor=0.010, stance_drift=0.015, joint_range=0.02)
# Clips a policy walked unaided (track.py record): no assist holds a stance foot, so it slides
# like any walking policy's does, up to 3 cm over a stance at the top speed.
TRACKED = Tolerances(floor=0.010, stance_drift=0.030, joint_range=0.02)
IK_RESIDUAL = 1e-6  # m (centre of mass, feet) and sin(foot pitch) the IK may leave
SPEED_TOLERANCE = 0.05  # m/s a replayed clip's mean forward speed may miss the clip's


@dataclasses.dataclass(frozen=True)
class Assist:
    """A virtual spring / damper on the root toward the clip's root pose (xfrc_applied)."""

    kp: float = 50.0  # N/m
    kd: float = 10.0  # N s/m
    kp_rot: float = 5.0  # N m/rad
    kd_rot: float = 0.5  # N m s/rad

    def scaled(self, k: float) -> Assist:
        return Assist(self.kp * k, self.kd * k, self.kp_rot * k, self.kd_rot * k)


# The servo target of each control step is the clip `LEAD` frames past the next one: the servos
# (kp 21.1, 4 N m) lag the target by a few frames; one frame of lead cut the joint error by a
# quarter in the replays of data/README.md.
LEAD = 1
ASSIST_SCALES = (1.0, 2.0, 4.0)  # tried in turn until a replay passes the checks


@dataclasses.dataclass(frozen=True)
class Robot:
    """The ids gait.py needs, from EnvConfig's names (what robot.resolve_names finds, in short)."""

    names: tuple[str, ...]  # configured joints
    qpos: np.ndarray  # their qpos addresses
    dofs: np.ndarray  # their dof addresses
    lo: np.ndarray  # their ranges
    hi: np.ndarray
    actuators: np.ndarray  # the servo of each
    root: int  # body
    feet: np.ndarray  # sites
    soles: tuple[np.ndarray, ...]  # geoms of each foot
    legs: np.ndarray  # dof addresses of the joints above the feet


def robot_ids(model: mujoco.MjModel, config: EnvConfig) -> Robot:
    """Ids of the configured joints, servos, root, feet, soles; ConfigError for a missing name."""

    def ids(kind: mujoco.mjtObj, names: tuple[str, ...]) -> np.ndarray:
        found = np.array([mujoco.mj_name2id(model, kind, n) for n in names], dtype=int)
        if (found < 0).any():
            missing = [n for n, i in zip(names, found, strict=True) if i < 0]
            raise ConfigError(f"{missing} not in model '{config.model_path}'")
        return found

    names = config.joints or config.actuators
    joints = ids(mujoco.mjtObj.mjOBJ_JOINT, names)
    feet = ids(mujoco.mjtObj.mjOBJ_SITE, config.feet_sites)
    above = set()
    for site in feet:
        body = model.site_bodyid[site]
        while body:
            above.add(body)
            body = model.body_parentid[body]
    return Robot(
        names=names,
        qpos=model.jnt_qposadr[joints],
        dofs=model.jnt_dofadr[joints],
        lo=model.jnt_range[joints, 0],
        hi=model.jnt_range[joints, 1],
        actuators=ids(mujoco.mjtObj.mjOBJ_ACTUATOR, config.actuators),
        root=int(ids(mujoco.mjtObj.mjOBJ_BODY, (config.root_body,))[0]),
        feet=feet,
        soles=tuple(ids(mujoco.mjtObj.mjOBJ_GEOM, config.sole_geoms).reshape(len(feet), -1)),
        legs=np.array([model.jnt_dofadr[j] for j in joints if model.jnt_bodyid[j] in above]),
    )


# ---------------------------------------------------------------------------------------------
# The gait: centre of mass and feet over time
# ---------------------------------------------------------------------------------------------


def feet_targets(
    t: np.ndarray, speed: float, step_time: float, home_xy: np.ndarray, swing_height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Feet positions (T, 2, 3), in EnvConfig.feet_sites order, and the stance foot (T,).

    Step k lasts step_time; foot 0 swings on even steps (the first half of each gait cycle), foot
    1 on odd ones. The stance foot of step k stands s (k + 1/2) ahead of its home spot (s = one
    step), and a swing carries a foot from its spot of step k - 1 to that of step k + 1.
    """
    k, u = np.divmod(t / step_time + 1e-9, 1.0)
    s = speed * step_time
    stance = np.where(k % 2 == 0, 1, 0)
    feet = np.zeros((len(t), 2, 3))
    for foot in (0, 1):
        swinging = stance != foot
        advance = np.where(swinging, k - 0.5 + (1 - np.cos(np.pi * u)), k + 0.5)
        feet[:, foot, 0] = home_xy[foot, 0] + s * advance
        feet[:, foot, 1] = home_xy[foot, 1]
        feet[:, foot, 2] = np.where(swinging, swing_height * np.sin(np.pi * u), 0.0)
    return feet, stance


def lipm_com(
    t: np.ndarray, speed: float, step_time: float, tc: float, stance_xy: np.ndarray, mid_y: float
) -> np.ndarray:
    """Centre of mass (T, 2) of a periodic linear-inverted-pendulum walk over the stance feet.

    Over each stance, x'' = (x - foot) / tc^2 both ways: forward from half a step behind the
    stance foot to half a step ahead, sideways from the midline toward the foot and back.
    """
    half = step_time / 2
    tau = np.mod(t / step_time + 1e-9, 1.0) * step_time - half  # from mid-stance
    x = stance_xy[:, 0] + speed * half * np.sinh(tau / tc) / np.sinh(half / tc)
    y = stance_xy[:, 1] + (mid_y - stance_xy[:, 1]) * np.cosh(tau / tc) / np.cosh(half / tc)
    return np.stack([x, y], axis=1)


# ---------------------------------------------------------------------------------------------
# Inverse kinematics: Newton on MuJoCo's Jacobians
# ---------------------------------------------------------------------------------------------


def lowest_point(model: mujoco.MjModel, data: mujoco.MjData, geom: int) -> np.ndarray:
    """World position of the lowest point of a sphere, capsule or box geom (after kinematics)."""
    rot = data.geom_xmat[geom].reshape(3, 3)
    size, kind, centre = model.geom_size[geom], model.geom_type[geom], data.geom_xpos[geom]
    if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        return centre - [0.0, 0.0, size[0]]
    if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
        end = -np.sign(rot[2, 2] or 1.0) * size[1] * rot[:, 2]  # the lower end of the axis
        return centre + end - [0.0, 0.0, size[0]]
    if kind == mujoco.mjtGeom.mjGEOM_BOX:
        corner = -np.where(rot[2] >= 0, 1.0, -1.0) * size[:3]  # the lowest corner, geom frame
        return centre + rot @ corner
    raise ConfigError(f"sole geom {geom} must be a sphere, capsule or box")


def _kinematics(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)  # subtree centres of mass, and the Jacobians' reference point


def solve_frame(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    robot: Robot,
    com_xy: np.ndarray,
    feet: np.ndarray,
    iterations: int = 30,
) -> float:
    """Move data.qpos (pelvis x, y and the leg joints) to the targets; the largest residual.

    Targets: centre of mass x, y; each foot's site x, y, its lowest sole point's z (a rolled
    foot stands on its edge, not in the floor) and its pitch (site x axis level). The rest of
    qpos (pelvis height and orientation, other joints) stays.
    """
    dofs = np.concatenate([[0, 1], robot.legs])  # the free joint's x, y dofs move qpos 0, 1
    index = np.array([0, 1, *model.jnt_qposadr[model.dof_jntid[robot.legs]]])
    jac, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    for _ in range(iterations):
        _kinematics(model, data)
        mujoco.mj_jacSubtreeCom(model, data, jac, robot.root)
        rows = [jac[0].copy(), jac[1].copy()]
        errors = list(data.subtree_com[robot.root, :2] - com_xy)
        for foot, site in enumerate(robot.feet):
            mujoco.mj_jacSite(model, data, jac, jacr, site)
            axis = data.site_xmat[site].reshape(3, 3)[:, 0]
            # d(axis_z)/dq = (w x axis)_z for the foot's angular velocity w.
            rows += [jac[0].copy(), jac[1].copy(), jacr[0] * axis[1] - jacr[1] * axis[0]]
            errors += [*(data.site_xpos[site, :2] - feet[foot, :2]), axis[2]]
            low = [lowest_point(model, data, g) for g in robot.soles[foot]]
            g = int(np.argmin([p[2] for p in low]))
            mujoco.mj_jac(model, data, jac, None, low[g], model.geom_bodyid[robot.soles[foot][g]])
            rows.append(jac[2].copy())
            errors.append(low[g][2] - feet[foot, 2])
        residual = float(np.abs(errors).max())
        if residual < 1e-12:
            break
        data.qpos[index] += np.linalg.lstsq(np.array(rows)[:, dofs], -np.array(errors))[0]
    _kinematics(model, data)
    return residual


def kinematic_clip(
    model: mujoco.MjModel, config: EnvConfig, gait: GaitConfig, speed: float
) -> tuple[np.ndarray, np.ndarray]:
    """(qpos (T, nq), qvel (T, nv)) of one clip at the control rate, from gait phase 0.

    Velocities by central differences (motion.derivative, body_angular_velocity). ConfigError if
    the IK misses a frame by more than IK_RESIDUAL.
    """
    robot, data = robot_ids(model, config), mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key(config.home_keyframe).id)
    _kinematics(model, data)
    t = np.arange(round(gait.seconds / config.ctrl_dt) + 1) * config.ctrl_dt
    if speed == 0:
        return np.tile(data.qpos, (len(t), 1)), np.zeros((len(t), model.nv))
    if config.gait_frequency <= 0:
        raise ConfigError(f"gait_frequency {config.gait_frequency}: walking clips need a clock")

    step_time = 0.5 / config.gait_frequency
    home_xy = data.site_xpos[robot.feet, :2].copy()
    drop = gait.height_per_speed * speed
    tc = np.sqrt((data.subtree_com[robot.root, 2] - drop) / GRAVITY)
    feet, stance = feet_targets(t, speed, step_time, home_xy, config.swing_height)
    stance_xy = feet[np.arange(len(t)), stance, :2]
    com = lipm_com(t, speed, step_time, tc, stance_xy, home_xy[:, 1].mean())

    data.qpos[2] -= drop
    qpos = np.zeros((len(t), model.nq))
    for i in range(len(t)):  # each frame starts from the last one's solution
        residual = solve_frame(model, data, robot, com[i], feet[i])
        if residual > IK_RESIDUAL:
            raise ConfigError(f"IK misses frame {i} of the {speed} m/s clip by {residual:.2e}")
        qpos[i] = data.qpos
    return qpos, velocities(model, qpos, config.ctrl_dt)


def velocities(model: mujoco.MjModel, qpos: np.ndarray, dt: float) -> np.ndarray:
    """qvel (T, nv) of states qpos (T, nq): a free root, then hinge / slide joints only."""
    qvel = np.zeros((len(qpos), model.nv))
    qvel[:, 0:3] = motion.derivative(qpos[:, 0:3], dt)
    qvel[:, 3:6] = motion.body_angular_velocity(qpos[:, 3:7], dt)
    qvel[:, 6:] = motion.derivative(qpos[:, 7:], dt)
    return qvel


# ---------------------------------------------------------------------------------------------
# Checks: no sole in the floor, standing feet still, joints in range
# ---------------------------------------------------------------------------------------------


def check_clip(
    model: mujoco.MjModel, config: EnvConfig, qpos: np.ndarray, tol: Tolerances = KINEMATIC
) -> list[str]:
    """What is wrong with a clip of states qpos (T, nq); [] if nothing."""
    robot, data = robot_ids(model, config), mujoco.MjData(model)
    bottoms, sites = [], []
    for q in qpos:
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        bottoms.append([[lowest_point(model, data, g)[2] for g in soles] for soles in robot.soles])
        sites.append(data.site_xpos[robot.feet, :2].copy())
    bottom = np.array(bottoms).min(axis=2)  # (T, feet): each foot's lowest sole point
    sites = np.array(sites)  # (T, feet, 2)
    problems = []

    joints = qpos[:, robot.qpos]
    outside = (joints < robot.lo - tol.joint_range) | (joints > robot.hi + tol.joint_range)
    for j in np.nonzero(outside.any(axis=0))[0]:
        i = int(np.argmax(outside[:, j]))
        problems.append(
            f"joint {robot.names[j]} is {joints[i, j]:.4f} rad at frame {i}, "
            f"outside [{robot.lo[j]:.4f}, {robot.hi[j]:.4f}]"
        )
    if bottom.min() < -tol.floor:
        i, foot = np.unravel_index(np.argmin(bottom), bottom.shape)
        problems.append(
            f"foot {config.feet_sites[foot]} is {-bottom[i, foot] * 1000:.1f} mm "
            f"below the floor at frame {i} (tolerance {tol.floor * 1000:g} mm)"
        )

    # Drift: how far a standing foot's site has moved since the frame it touched down.
    drift = np.zeros(bottom.shape)
    standing = bottom < tol.on_floor
    for foot in range(bottom.shape[1]):
        start = 0
        for i in range(len(qpos)):
            start = i if not (i and standing[i - 1, foot]) else start
            drift[i, foot] = np.linalg.norm(sites[i, foot] - sites[start, foot])
    drift *= standing
    if drift.max() > tol.stance_drift:
        i, foot = np.unravel_index(np.argmax(drift), drift.shape)
        problems.append(
            f"foot {config.feet_sites[foot]} slid {drift[i, foot] * 1000:.1f} mm "
            f"while standing, by frame {i} (tolerance "
            f"{tol.stance_drift * 1000:g} mm)"
        )
    return problems


# ---------------------------------------------------------------------------------------------
# Physics replay: position servos follow the clip, the root optionally guided
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Replay:
    """A simulated robot following a clip, recorded at the control rate up to a fall."""

    qpos: np.ndarray  # (T, nq), frame 0 = the clip's
    qvel: np.ndarray  # (T, nv)
    fell_at: float | None  # s; the env's termination (height, tilt); None = stayed up
    joint_rms: float  # rad, servo joints against the clip, over the frames recorded
    speed: float  # m/s, root x travel / time recorded
    clip_speed: float  # m/s, the same for the clip
    force_rms: float  # N, assistance on the root (0 without)
    force_max: float
    torque_rms: float  # N m
    torque_max: float


def _fallen(config: EnvConfig, data: mujoco.MjData, root: int) -> bool:
    """The env's termination: base height outside its range, or roll / pitch past max_tilt."""
    rot = data.xmat[root].reshape(3, 3)
    pitch, roll = np.arcsin(np.clip(-rot[2, 0], -1, 1)), np.arctan2(rot[2, 1], rot[2, 2])
    height = data.qpos[2]
    return bool(
        height < config.min_base_height
        or height > config.max_base_height
        or max(abs(roll), abs(pitch)) > config.max_tilt
    )


def replay(
    model: mujoco.MjModel,
    config: EnvConfig,
    qpos: np.ndarray,
    qvel: np.ndarray,
    assist: Assist | None = None,
    lead: int = LEAD,
) -> Replay:
    """Start at the clip's first state; each control step, servo targets = frame t + 1 + lead.

    With `assist`, a force and torque on the root body (at its centre of mass, world frame) pull
    it toward the clip's root pose and velocity, interpolated to each physics step.
    """
    robot, data = robot_ids(model, config), mujoco.MjData(model)
    substeps = round(config.ctrl_dt / model.opt.timestep)
    data.qpos[:], data.qvel[:] = qpos[0], qvel[0]
    mujoco.mj_forward(model, data)
    out_q, out_v, wrenches, fell_at = [qpos[0].copy()], [qvel[0].copy()], [], None
    for t in range(len(qpos) - 1):
        data.ctrl[robot.actuators] = qpos[min(t + 1 + lead, len(qpos) - 1), robot.qpos]
        for sub in range(substeps):
            if assist is not None:
                u = (sub + 1) / substeps
                pos = (1 - u) * qpos[t, :3] + u * qpos[t + 1, :3]
                quat = motion.slerp(qpos[t, 3:7], qpos[t + 1, 3:7], u)
                vel = (1 - u) * qvel[t] + u * qvel[t + 1]
                rot = data.xmat[robot.root].reshape(3, 3)
                turn = motion.quat_log(motion.quat_mul(quat, motion.quat_conj(data.qpos[3:7])))
                spin = motion.quat_to_matrix(quat) @ vel[3:6] - rot @ data.qvel[3:6]  # world
                force = assist.kp * (pos - data.qpos[:3]) + assist.kd * (vel[:3] - data.qvel[:3])
                torque = assist.kp_rot * turn + assist.kd_rot * spin
                data.xfrc_applied[robot.root] = np.concatenate([force, torque])
                wrenches.append(data.xfrc_applied[robot.root].copy())
            mujoco.mj_step(model, data)
        out_q.append(data.qpos.copy())
        out_v.append(data.qvel.copy())
        if _fallen(config, data, robot.root):
            fell_at = (t + 1) * config.ctrl_dt
            break
    q, n = np.array(out_q), len(out_q)
    seconds = (n - 1) * config.ctrl_dt
    wrenches = np.array(wrenches) if wrenches else np.zeros((1, 6))
    force, torque = (np.linalg.norm(wrenches[:, s], axis=1) for s in (slice(0, 3), slice(3, 6)))
    return Replay(
        qpos=q,
        qvel=np.array(out_v),
        fell_at=fell_at,
        joint_rms=float(np.sqrt(np.mean((q[:, robot.qpos] - qpos[:n, robot.qpos]) ** 2))),
        speed=float((q[-1, 0] - q[0, 0]) / seconds),
        clip_speed=float((qpos[n - 1, 0] - qpos[0, 0]) / seconds),
        force_rms=float(np.sqrt(np.mean(force**2))),
        force_max=float(force.max()),
        torque_rms=float(np.sqrt(np.mean(torque**2))),
        torque_max=float(torque.max()),
    )


def replay_problems(model: mujoco.MjModel, config: EnvConfig, run: Replay) -> list[str]:
    """What keeps a replay from being a reference clip: a fall, a missed speed, check_clip."""
    if run.fell_at is not None:
        return [f"fell at {run.fell_at:.2f} s"]
    problems = check_clip(model, config, run.qpos, REPLAYED)
    if abs(run.speed - run.clip_speed) > SPEED_TOLERANCE:
        problems.append(f"walked {run.speed:.3f} m/s for the clip's {run.clip_speed:.3f} m/s")
    return problems


# ---------------------------------------------------------------------------------------------
# Files and the command line
# ---------------------------------------------------------------------------------------------


def write_clip(
    path: str,
    model: mujoco.MjModel,
    config: EnvConfig,
    qpos: np.ndarray,
    qvel: np.ndarray,
    **extra: np.ndarray,
) -> None:
    """Save states qpos (T, nq), qvel (T, nv) at the control rate in motion.py's format."""
    robot = robot_ids(model, config)
    motion.save_clip(
        path,
        1.0 / config.ctrl_dt,
        robot.names,
        root_pos=qpos[:, 0:3],
        root_quat=qpos[:, 3:7],
        joint_pos=qpos[:, robot.qpos],
        root_lin_vel=qvel[:, 0:3],
        root_ang_vel=qvel[:, 3:6],
        joint_vel=qvel[:, robot.dofs],
        **extra,
    )


def _row(name: str, run: Replay) -> str:
    fell = f"{run.fell_at:5.2f}" if run.fell_at is not None else "   no"
    return (
        f"{name:>22} {fell} {run.joint_rms:9.3f} {run.speed:7.3f} / {run.clip_speed:5.3f} "
        f"{run.force_rms:5.1f} / {run.force_max:5.1f} {run.torque_rms:5.2f} / "
        f"{run.torque_max:5.2f}"
    )


HEADER = (
    f"{'':>22} {'fell':>5} {'joint RMS':>9} {'speed / clip m/s':>15} "
    f"{'force RMS/max N':>15} {'torque RMS/max N m':>18}"
)


def generate(out: str, config: EnvConfig, gait: GaitConfig) -> bool:
    """Write out/kinematic/walk_<v>.npz and the replayed out/walk_<v>.npz; False if one failed."""
    model, ok = load_model(config), True
    print(f"{'':>22} (weight {model.body_subtreemass[1] * GRAVITY:.1f} N)\n{HEADER}")
    for speed in gait.speeds:
        name = f"walk_{speed:.2f}.npz"
        qpos, qvel = kinematic_clip(model, config, gait, speed)
        problems = check_clip(model, config, qpos, KINEMATIC)
        if problems:
            print(f"{speed} m/s kinematic clip refused: {'; '.join(problems)}")
            ok = False
            continue
        phase = np.mod(
            2 * np.pi * config.gait_frequency * config.ctrl_dt * np.arange(len(qpos)), 2 * np.pi
        )
        write_clip(
            os.path.join(out, "kinematic", name),
            model,
            config,
            qpos,
            qvel,
            speed=np.float64(speed),
            phase=phase,
        )
        for lead in (0, LEAD):
            print(
                _row(
                    f"{speed:.1f} servos, lead {lead}",
                    replay(model, config, qpos, qvel, None, lead),
                )
            )
        for scale in ASSIST_SCALES:
            run = replay(model, config, qpos, qvel, Assist().scaled(scale))
            problems = replay_problems(model, config, run)
            print(_row(f"{speed:.1f} assist x{scale:g}", run), *problems, sep="  ")
            if not problems:
                write_clip(
                    os.path.join(out, name),
                    model,
                    config,
                    run.qpos,
                    run.qvel,
                    speed=np.float64(speed),
                    phase=phase[: len(run.qpos)],
                    assist_scale=np.float64(scale),
                )
                break
        else:
            print(f"{speed} m/s: no replay passed; clip refused")
            ok = False
    return ok


def replay_files(paths: list[str], config: EnvConfig, scale: float, lead: int) -> None:
    """Print how well the simulated robot follows each clip (read by motion.load_motion)."""
    model = load_model(config)
    clips = motion.load_motion(paths, config)
    print(HEADER)
    for n, name in enumerate(clips.clip_names):
        frames = clips.clip == n
        qpos, qvel = clips.qpos[frames].astype(np.float64), clips.qvel[frames].astype(np.float64)
        assist = Assist().scaled(scale) if scale else None
        print(_row(os.path.basename(name)[-22:], replay(model, config, qpos, qvel, assist, lead)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("generate", help="write kinematic and replayed walking clips")
    make.add_argument("--out", default="data")
    make.add_argument("--seconds", type=float, default=GaitConfig.seconds)
    follow = sub.add_parser("replay", help="replay clips (files or folders) in physics")
    follow.add_argument("paths", nargs="+")
    follow.add_argument("--assist", type=float, default=0.0, help="scale of Assist(); 0 = off")
    follow.add_argument("--lead", type=int, default=LEAD, help="servo target lead, frames")
    args = parser.parse_args()
    config = EnvConfig()
    try:
        if args.command == "generate":
            sys.exit(0 if generate(args.out, config, GaitConfig(seconds=args.seconds)) else 1)
        replay_files(args.paths, config, args.assist, args.lead)
    except ConfigError as e:
        parser.error(str(e))


if __name__ == "__main__":
    main()
