"""Plain MuJoCo, run the way the robot runs: the sim-to-sim check of a policy.

`MujocoRobot` is the C engine at sim_dt 0.002 with MuJoCo's default solver settings, read the way
the robot reads its sensors (IMU, joint encoders) and driven through servo targets with a
control step of latency; `run_mujoco_episode` runs deploy.py's Controller on it for one episode
and returns per-step arrays by the definitions play.py's tables use (foot_slip is shared with the
MJX evaluation). `heading_joints` and `Hold` set up deploy.HeadingHold for a robot.
"""

from __future__ import annotations

from typing import NamedTuple

import mujoco
import numpy as np

from config import ConfigError
from deploy import HOLD_MAX_RATE, Controller, HeadingHold
from env import EnvConfig
from robot import load_model, sole_thickness


def heading(rot: np.ndarray) -> np.ndarray:
    """Yaw (rad) of world-from-body rotation matrices (..., 3, 3)."""
    return np.arctan2(rot[..., 1, 0], rot[..., 0, 0])


class Hold(NamedTuple):
    """Heading-hold settings (deploy.HeadingHold) and the servos it subtracts from the IMU's yaw."""

    gain: float  # rad/s of yaw-rate command per rad of heading error
    yaw_joints: tuple[int, ...]  # policy-order indices, from heading_joints
    max_rate: float = HOLD_MAX_RATE  # rad/s
    max_lead: float = 0.5  # rad


def heading_joints(env_config: EnvConfig) -> tuple[int, ...]:
    """Servos (policy order) about the vertical, in the home pose, between the root and the IMU.

    They turn the IMU against the legs (WildRobot: waist_yaw), so the legs' heading is the IMU's
    yaw minus their angles.
    """
    model = load_model(env_config)
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key(env_config.home_keyframe).id)
    mujoco.mj_forward(model, data)
    names = list(env_config.joints or env_config.actuators)
    root, body = model.body(env_config.root_body).id, model.site(env_config.imu_site).bodyid[0]
    found = []
    while body not in (root, 0):
        for j in range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body]):
            vertical = abs(data.xaxis[j] @ np.array([0.0, 0.0, 1.0])) > 0.99
            if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE and vertical:
                if model.joint(j).name not in names:
                    name = model.joint(j).name
                    raise ConfigError(
                        f"joint '{name}' turns the IMU about the vertical but has no servo: "
                        "the legs' heading cannot be sensed"
                    )
                found.append(names.index(model.joint(j).name))
        body = model.body_parentid[body]
    return tuple(found)


def mujoco_model(env_config: EnvConfig) -> mujoco.MjModel:
    """The robot at sim_dt 0.002 with MuJoCo's default (accurate) solver settings.

    Sliding friction is the model's own, unless the config fixes it (a zero-width
    randomization.floor_friction range, as `--friction` sets): then every colliding geom gets
    that value, as env.py randomizes it.
    """
    model = load_model(env_config)
    lo, hi = env_config.randomization.floor_friction
    if lo == hi:
        model.geom_friction[np.nonzero(model.geom_contype | model.geom_conaffinity)[0], 0] = lo
    defaults = mujoco.MjModel.from_xml_string("<mujoco/>").opt
    model.opt.timestep = 0.002
    model.opt.solver = defaults.solver
    model.opt.iterations = defaults.iterations
    model.opt.ls_iterations = defaults.ls_iterations
    model.opt.disableflags = defaults.disableflags
    return model


class MujocoRobot:
    """Plain MuJoCo simulation read the way the robot reads its sensors, with servo latency."""

    def __init__(
        self,
        env_config: EnvConfig,
        noise: bool = True,
        seed: int = 0,
        action_delay: int | None = None,
    ):
        self.config = env_config
        self.model = mujoco_model(env_config)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.joints = [m.joint(j).id for j in (env_config.joints or env_config.actuators)]
        self.qadr = m.jnt_qposadr[self.joints]
        self.vadr = m.jnt_dofadr[self.joints]
        self.actuators = [m.actuator(a).id for a in env_config.actuators]
        self.imu = m.site(env_config.imu_site).id
        self.imu_body = m.site_bodyid[self.imu]
        self.root = m.body(env_config.root_body).id
        self.feet = [m.site(s).id for s in env_config.feet_sites]
        self.soles = np.array([m.geom(g).id for g in env_config.sole_geoms])
        self.sole_thickness = sole_thickness(m, self.soles, env_config)
        self.substeps = int(round(env_config.ctrl_dt / m.opt.timestep))
        self.noise = env_config.noise if noise else None
        self.rng = np.random.default_rng(seed)
        # Control steps between a command and the servos: the real robot's latency, simulated here
        # (deploy.py never adds any); by default the worst case the policy was trained with.
        delay = env_config.randomization.action_delay[1] if action_delay is None else action_delay
        self.action_delay = delay

    def reset(self) -> None:
        key = self.model.key(self.config.home_keyframe).id
        mujoco.mj_resetDataKeyframe(self.model, self.data, key)
        mujoco.mj_forward(self.model, self.data)
        # The servos hold the home pose until the first delayed target arrives (as in env.py).
        lo, hi = self.model.jnt_range[self.joints].T
        self.pending = [np.clip(self.data.qpos[self.qadr], lo, hi)] * self.action_delay
        self.feet_pos = self.data.site_xpos[self.feet].copy()

    def sensors(self):
        """IMU quaternion and gyro, joint encoders: what the robot's drivers report."""
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self.imu])
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_SITE, self.imu, vel, 1)
        gyro, q, qd = vel[:3], self.data.qpos[self.qadr], self.data.qvel[self.vadr]
        if self.noise is not None:
            n, r = self.noise, self.rng
            tilt = np.concatenate([[1.0], 0.5 * r.normal(0, n.gravity, 3)])  # small rotation
            mujoco.mju_mulQuat(quat, quat.copy(), tilt / np.linalg.norm(tilt))
            gyro = gyro + r.normal(0, n.gyro, 3)
            q = q + r.normal(0, n.joint_pos, len(q))
            qd = qd + r.normal(0, n.joint_vel, len(qd))
        return quat, gyro, q, qd

    def apply(self, targets: np.ndarray) -> None:
        """Send servo targets; they take effect `action_delay` control steps later."""
        self.pending.append(np.asarray(targets))
        self.data.ctrl[self.actuators] = self.pending.pop(0)
        self.last_feet_pos = self.feet_pos
        for _ in range(self.substeps):
            mujoco.mj_step(self.model, self.data)
        self.feet_pos = self.data.site_xpos[self.feet].copy()

    def feet_vel(self) -> np.ndarray:
        """(nfeet * 3,) foot site velocities over the last control step, as env.py measures them."""
        return ((self.feet_pos - self.last_feet_pos) / self.config.ctrl_dt).reshape(-1)

    def sole_contact(self) -> np.ndarray:
        """Per sole geom: its lowest point within contact_height of the floor, as in env.py."""
        sole_z = self.data.geom_xpos[self.soles, 2] - self.sole_thickness
        return sole_z < self.config.contact_height

    def base_velocity(self) -> np.ndarray:
        """Forward, lateral (m/s) and yaw rate (rad/s) of the root in its own frame, as env.py."""
        rot = self.data.xmat[self.root].reshape(3, 3)
        ang = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_BODY, self.root, ang, 1)
        return np.array([*(rot.T @ self.data.qvel[:3])[:2], ang[2]])

    def forward_velocity(self) -> float:
        return float(self.base_velocity()[0])

    def twist_rate(self) -> float:
        """Yaw rate (world z, rad/s) of the IMU's body against the root, as env.py's torso_twist:
        what the chest gyro sees of the waist turning."""
        imu, root = np.zeros(6), np.zeros(6)
        body = mujoco.mjtObj.mjOBJ_BODY
        mujoco.mj_objectVelocity(self.model, self.data, body, self.imu_body, imu, 0)
        mujoco.mj_objectVelocity(self.model, self.data, body, self.root, root, 0)
        return float(imu[2] - root[2])

    def heading(self) -> float:
        return float(heading(self.data.xmat[self.root].reshape(3, 3)))

    def fallen(self) -> bool:
        c, rot = self.config, self.data.xmat[self.root].reshape(3, 3)
        roll, pitch = np.arctan2(rot[2, 1], rot[2, 2]), np.arcsin(np.clip(-rot[2, 0], -1, 1))
        h = self.data.qpos[2]
        return bool(
            h < c.min_base_height
            or h > c.max_base_height
            or max(abs(roll), abs(pitch)) > c.max_tilt
        )


def run_mujoco_episode(
    robot: MujocoRobot,
    ctrl: Controller,
    command,
    phase: float,
    frames=None,
    push=None,
    hold: Hold | None = None,
):
    """One episode; per-step arrays of the same quantities as the JAX evaluation.

    push: (speed m/s, every n control steps, rng): a horizontal velocity kick in a random
    direction, added to the root as env.py adds its pushes (before that step's physics).
    hold: steer a heading with deploy.HeadingHold, from the sensor readings the policy gets.
    """
    robot.reset()
    ctrl.reset(phase)
    steer = None
    if hold is not None:
        steer = HeadingHold(robot.config.ctrl_dt, hold.gain, hold.max_rate, hold.max_lead,
                            hold.yaw_joints)  # fmt: skip
    keys = ("alive", "vel", "vel_err", "lat_err", "yaw_err", "twist", "heading", "force", "joints",
            "power", "slip")  # fmt: skip
    rows = {k: [] for k in keys}
    alive = True
    for t in range(robot.config.episode_length):
        sensors = robot.sensors()
        given = command
        if steer is not None:
            if t == 0:
                steer.reset(sensors[0], sensors[2])
            given = steer(sensors[0], sensors[2], command)
        targets = ctrl.step(*sensors, command=given)
        if push is not None and (t + 1) % push[1] == 0:
            angle = push[2].uniform(0, 2 * np.pi)
            robot.data.qvel[:2] += push[0] * np.array([np.cos(angle), np.sin(angle)])
        robot.apply(targets)
        alive = alive and not robot.fallen()
        force = robot.data.actuator_force[robot.actuators]
        vel = robot.base_velocity()
        rows["alive"].append(alive)
        rows["vel"].append(vel[0])
        rows["vel_err"].append(abs(vel[0] - command[0]))
        rows["lat_err"].append(abs(vel[1] - command[1]))
        rows["yaw_err"].append(abs(vel[2] - command[2]))
        rows["twist"].append(abs(robot.twist_rate()))
        rows["heading"].append(robot.heading())
        rows["force"].append(force.copy())
        rows["joints"].append(robot.data.qpos[robot.qadr].copy())
        rows["power"].append(np.abs(force * robot.data.qvel[robot.vadr]).sum())
        rows["slip"].append(foot_slip(robot.feet_vel(), robot.sole_contact(), len(robot.feet)))
        if frames is not None:
            frames(robot)
        if not alive:
            break
    return {k: np.asarray(v) for k, v in rows.items()}


def foot_slip(feet_vel, sole_contact, nfeet: int):
    """Mean horizontal speed (m/s) of the feet touching the floor, 0 if none; NumPy or JAX.

    feet_vel (..., nfeet * 3): foot site velocity over the last control step (finite differences);
    sole_contact (..., nsoles): soles grouped per foot; a foot touches if any of its soles does.
    Both evaluations measure slip through this one definition.
    """
    batch = sole_contact.shape[:-1]
    touching = sole_contact.reshape(batch + (nfeet, -1)).max(-1)
    speed = (feet_vel.reshape(batch + (nfeet, 3))[..., :2] ** 2).sum(-1) ** 0.5
    return (speed * touching).sum(-1) / touching.sum(-1).clip(min=1)
