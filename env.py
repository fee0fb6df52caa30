"""WildRobot velocity-command walking on MuJoCo MJX: a pure, jittable, vmappable environment.

`WildRobotEnv(config).reset(key) -> State` and `.step(state, action) -> State` are pure functions of
pytrees, so `jax.jit(jax.vmap(env.step))` runs thousands of robots at once. Any MJCF robot with a
floating base plugs in through `EnvConfig` (model path, actuator / joint / site / geom names).

    python env.py                      # reset, step with random actions, print throughput
    python env.py --num-envs 1024
    python env.py --config tests/assets/biped12.toml   # another robot: the file's [env] section
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from config import (
    ConfigError,
    bounded,
    check,
    file_path,
    load_file,
    one_of,
    override,
    span,
)
from interface import State
from robot import force_limits, load_model, mirror_image, resolve_names, sole_thickness

with contextlib.redirect_stdout(
    io.StringIO()
):  # mjx prints a notice when the optional warp is absent
    from mujoco import mjx

ROOT = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------------------------
# Configuration: frozen, typed dataclasses; dotted overrides with named errors
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RewardScales:
    """Scale of each reward term per simulated second (terms are integrated over ctrl_dt).

    Any sign: the terms are costs (positive) or rewards, and the scale says which.
    """

    tracking_lin_vel: float = 2.0  # exp(-|cmd_xy - v_xy|^2 / sigma), base frame
    tracking_ang_vel: float = 0.5  # exp(-(cmd_yaw - w_z)^2 / sigma)
    ang_vel_error: float = 0.0  # (cmd_yaw - w_z)^2: unlike the tracking term, never saturates
    torso_twist: float = 0.0  # squared yaw rate of the IMU's body against the base (a waist)
    orientation: float = -5.0  # squared tilt of gravity in the base frame
    base_height: float = -50.0  # squared error to base_height_target
    torques: float = -2e-4  # sum of squared actuator forces
    torque_limit: float = 0.0  # servos at their torque limit (|force| >= 99% of forcerange)
    action_rate: float = -0.02  # sum of squared action changes
    feet_air_time: float = 2.0  # air time beyond feet_air_time_target at touchdown (walking only)
    feet_phase: float = 1.0  # swing-foot height following the gait clock (walking only)
    feet_slip: float = -0.25  # squared horizontal speed of feet in contact
    feet_tilt: float = 0.0  # squared tilt (sin^2) of the soles of feet in contact: heel, toe, edge
    joint_limits: float = -5.0  # distance past the soft joint limits
    pose: float = -0.5  # squared deviation from the home pose
    termination: float = -50.0  # once per fall; x ctrl_dt this is a lump penalty of -1


@dataclasses.dataclass(frozen=True)
class Randomization:
    """Per-episode domain randomization ranges (lo, hi); a zero-width range disables that item."""

    floor_friction: tuple[float, float] = span((0.4, 1.0), ge=0)
    # Scales multiply the model's values. A body needs mass and a servo stiffness; the others may
    # go to 0 (no damping, friction loss, armature).
    link_mass_scale: tuple[float, float] = span((0.9, 1.1), gt=0)  # per body
    torso_mass_offset: tuple[float, float] = span((-0.1, 0.1))  # kg, added to torso_body
    kp_scale: tuple[float, float] = span((0.9, 1.1), gt=0)
    kv_scale: tuple[float, float] = span((0.9, 1.1), ge=0)
    damping_scale: tuple[float, float] = span((0.8, 1.2), ge=0)
    frictionloss_scale: tuple[float, float] = span((0.8, 1.2), ge=0)
    armature_scale: tuple[float, float] = span((0.95, 1.05), ge=0)
    joint_offset: tuple[float, float] = span((-0.03, 0.03))  # rad, servo zero error
    # Control steps, at most EnvConfig.max_action_delay.
    action_delay: tuple[int, int] = span((0, 1), ge=0)
    push_interval: tuple[float, float] = span((5.0, 10.0), gt=0)  # seconds between pushes
    push_velocity: tuple[float, float] = span((0.0, 0.3), ge=0)  # m/s kick, random direction


@dataclasses.dataclass(frozen=True)
class Noise:
    """Standard deviations of the actor's sensor noise (the critic sees clean values)."""

    gravity: float = bounded(0.035, ge=0)  # about 2 degrees of orientation error
    gyro: float = bounded(0.05, ge=0)  # rad/s
    joint_pos: float = bounded(0.01, ge=0)  # rad
    joint_vel: float = bounded(0.5, ge=0)  # rad/s


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Everything the environment needs; any floating-base MJCF robot plugs in through the names.

    Each field declares its allowed values (config.bounded / span / one_of); config.check tests
    them and `relations` before any model is loaded. The model's own requirements are tested when
    it loads (robot.py: load_model, resolve_names): see README, "Bring your own robot".
    """

    # Relative: from the working directory, else the repository; in a config file, from its folder.
    model_path: str = file_path("assets/scene.xml")
    actuators: tuple[str, ...] = (
        "right_hip_pitch", "right_hip_roll", "right_knee_pitch", "right_ankle_pitch",
        "left_hip_pitch", "left_hip_roll", "left_knee_pitch", "left_ankle_pitch", "waist_yaw",
    )  # fmt: skip  # position servos (gear 1), in the policy's action order
    joints: tuple[str, ...] = ()  # joint driven by each actuator; empty = same names as actuators
    root_body: str = "waist"  # the body with the free joint
    torso_body: str = "torso"  # gets the torso mass offset
    imu_site: str = "imu"
    # At the bottom of each foot, z along the sole's normal (feet_tilt reads it).
    feet_sites: tuple[str, ...] = ("left_foot", "right_foot")
    sole_geoms: tuple[str, ...] = (
        "left_sole_front", "left_sole_back", "right_sole_front", "right_sole_back",
    )  # fmt: skip  # grouped per foot, in feet_sites order
    home_keyframe: str = "home"  # standing, feet on the floor
    # What tells a left joint's name from its right partner's, for mirror() (a symmetry loss).
    mirror_names: tuple[str, str] = ("left", "right")
    # Physics: chosen by benchmarks/solver_sweep.py (see README).
    ctrl_dt: float = bounded(0.02, gt=0)
    sim_dt: float = bounded(0.005, gt=0)  # ctrl_dt must be a whole number of these
    solver: str = one_of("cg", ("cg", "newton"))
    iterations: int = bounded(4, ge=1)
    ls_iterations: int = bounded(4, ge=1)
    # Physics code: MJX's JAX implementation, or MuJoCo Warp ("warp": `pip install -r
    # requirements-warp.txt`; GPU kernels, or CPU ones for checks).
    impl: str = one_of("jax", ("jax", "warp"))
    # Warp pools its contact buffers over all the envs it steps at once on a device (all seeds
    # together): the most it may be given (VecEnv and the trainers check it).
    warp_max_envs: int = bounded(8192, ge=1)
    # Control.
    action_scale: float = bounded(0.3, gt=0)  # rad per unit action around the home pose
    # Weight of the new action in a low-pass filter; 1 = off.
    action_filter_alpha: float = bounded(1.0, gt=0, le=1)
    # Size of the action buffer; the delay of an episode comes from randomization.action_delay.
    max_action_delay: int = bounded(1, ge=0)
    episode_length: int = bounded(500, ge=1)  # control steps (truncation)
    # Task.
    lin_vel_x: tuple[float, float] = span((0.0, 0.5))
    lin_vel_y: tuple[float, float] = span((0.0, 0.0))
    ang_vel_yaw: tuple[float, float] = span((0.0, 0.0))
    zero_command_prob: float = bounded(0.1, ge=0, le=1)  # fraction of "stand still" commands
    turn_in_place_prob: float = bounded(0.0, ge=0, le=1)  # of the others: yaw only, no walking
    command_resample_seconds: float = bounded(5.0, gt=0)
    gait_frequency: float = bounded(1.5, ge=0)  # Hz of the phase clock
    tracking_sigma: float = bounded(0.1, gt=0)  # m^2/s^2, of the forward and lateral velocity
    yaw_tracking_sigma: float = bounded(0.1, gt=0)  # rad^2/s^2, of the yaw rate
    base_height_target: float = bounded(0.46, gt=0)
    swing_height: float = bounded(0.04, ge=0)  # m, peak foot height the feet_phase term asks for
    feet_air_time_target: float = bounded(0.25, ge=0)  # s
    # m above the floor at which a sole counts as touching.
    contact_height: float = bounded(0.005, ge=0)
    # Fraction of the joint range free of the joint_limits cost.
    soft_joint_limit: float = bounded(0.95, gt=0, le=1)
    # Termination.
    min_base_height: float = 0.20
    max_base_height: float = 0.70
    max_tilt: float = bounded(0.8, gt=0)  # rad, |roll| or |pitch|
    reward_scales: RewardScales = RewardScales()  # any sign
    randomization: Randomization = Randomization()
    noise: Noise = Noise()

    def relations(self) -> list[tuple[str, bool, str]]:
        """Conditions between fields, for config.check: (key, holds, what is wrong)."""
        substeps = round(self.ctrl_dt / self.sim_dt)
        delay = self.randomization.action_delay
        return [
            ("ctrl_dt", substeps >= 1 and abs(substeps * self.sim_dt - self.ctrl_dt) < 1e-9,
             f"{self.ctrl_dt} is not a multiple of sim_dt {self.sim_dt}"),
            ("randomization.action_delay", delay[1] <= self.max_action_delay,
             f"{delay} must lie in 0..max_action_delay ({self.max_action_delay})"),
            ("min_base_height", self.min_base_height < self.max_base_height,
             f"{self.min_base_height} is not below max_base_height {self.max_base_height}"),
        ]  # fmt: skip


def nominal_config(config: EnvConfig) -> EnvConfig:
    """`config` with every randomization at its nominal value (scales 1, offsets, delay and pushes
    0, the floor's largest friction), no sensor noise, and the first command held all episode."""
    r = config.randomization
    fixed = {f.name: (0, 0) if f.name == "action_delay" else (1.0, 1.0) for f in
             dataclasses.fields(r)}  # fmt: skip
    for name in ("torso_mass_offset", "joint_offset", "push_velocity"):
        fixed[name] = (0.0, 0.0)
    fixed["floor_friction"] = (r.floor_friction[1], r.floor_friction[1])
    fixed["push_interval"] = r.push_interval
    noise = {f.name: 0.0 for f in dataclasses.fields(config.noise)}
    held = {"command_resample_seconds": 1e6, "zero_command_prob": 0.0}
    return override(config, {"randomization": fixed, "noise": noise, **held})


# ---------------------------------------------------------------------------------------------
# Named observation layouts
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    """Names and sizes of the pieces of a flat observation, so code can slice a piece by name."""

    pieces: tuple[tuple[str, int], ...]

    @property
    def size(self) -> int:
        return sum(n for _, n in self.pieces)

    def slice(self, name: str) -> slice:
        start = 0
        for piece, n in self.pieces:
            if piece == name:
                return slice(start, start + n)
            start += n
        raise KeyError(f"no observation piece '{name}' in {[p for p, _ in self.pieces]}")

    def build(self, values: dict[str, jax.Array]) -> jax.Array:
        parts = []
        for name, n in self.pieces:
            v = jnp.asarray(values[name], jnp.float32).reshape(-1)
            assert v.shape == (n,), f"observation piece '{name}' has {v.shape[0]} values, want {n}"
            parts.append(v)
        return jnp.concatenate(parts)


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


@struct.dataclass
class DomainParams:
    """One episode's randomization draw (the critic sees it, the actor does not)."""

    friction: jax.Array  # ()
    mass_scale: jax.Array  # (nbody,) body 0 (world) unused
    torso_mass_offset: jax.Array  # ()
    kp_scale: jax.Array  # ()
    kv_scale: jax.Array  # ()
    damping_scale: jax.Array  # ()
    frictionloss_scale: jax.Array  # ()
    armature_scale: jax.Array  # ()
    joint_offset: jax.Array  # (nu,)
    action_delay: jax.Array  # () int32
    push_speed: jax.Array  # () m/s of this episode's pushes

    def vector(self) -> jax.Array:
        scalars = jnp.stack(
            [
                self.friction, self.torso_mass_offset, self.kp_scale, self.kv_scale,
                self.damping_scale, self.frictionloss_scale, self.armature_scale,
                self.action_delay.astype(jnp.float32), self.push_speed,
            ]
        )  # fmt: skip
        return jnp.concatenate([scalars, self.joint_offset, self.mass_scale[1:]])


@struct.dataclass
class EnvInfo:
    """The task's per-robot carry between control steps."""

    rng: jax.Array
    step: jax.Array  # () int32, control steps since reset
    command: jax.Array  # (3,) forward, lateral (m/s), yaw rate (rad/s)
    phase: jax.Array  # () gait clock in [0, 2 pi)
    last_action: jax.Array  # (nu,) policy action of the previous step
    filtered_action: jax.Array  # (nu,) low-pass filter state
    action_buffer: jax.Array  # (max_action_delay + 1, nu) newest first
    feet_air_time: jax.Array  # (nfeet,)
    last_contact: jax.Array  # (nfeet,) bool
    feet_pos: jax.Array  # (nfeet, 3) for finite-difference foot velocity
    push_countdown: jax.Array  # () int32, control steps to the next push
    params: DomainParams


# ---------------------------------------------------------------------------------------------
# MuJoCo Warp
# ---------------------------------------------------------------------------------------------

# mjx.Data's public fields: the same, per env, in the JAX and the Warp implementation.
DATA_FIELDS = tuple(f.name for f in mjx.Data.fields() if f.name != "_impl")
# Warp's overflow bits that mean lost contacts or constraints (not those of a solver that ran out
# of iterations, as CG at 4 iterations routinely does in both implementations): NEFC, NJMAX_NNZ,
# BROADPHASE, NARROWPHASE, CCD.
WARP_CAPACITY_OVERFLOWS = 0b11111
AT_LIMIT = 0.99  # a servo is at its torque limit from this share of its forcerange


def local_device() -> jax.Device:
    """This process's first device, for MJX's arrays. MJX's own default, `jax.devices()[0]`, is
    process 0's in a multi-process run, and no other process can put arrays there."""
    return jax.local_devices()[0]


def warp_physics(
    mj_model: mujoco.MjModel, data0: mjx.Data, config: EnvConfig
) -> tuple[mjx.Model, Any]:
    """MuJoCo Warp's model (overflow printing off: `simulate` counts overflows instead) and an
    empty Warp Data: its all-zero leaves as shapes, made inside the compiled step, not embedded.

    Buffers: twice the JAX implementation's contacts per env (pooled over `warp_max_envs` envs)
    and its constraint rows per env.
    """
    try:
        model = mjx.put_model(mj_model, impl="warp", device=local_device())
    except (ImportError, RuntimeError) as e:
        raise ConfigError(
            f"env.impl 'warp' needs MuJoCo Warp: pip install -r requirements-warp.txt ({e})"
        ) from None
    model = model.replace(opt=model.opt.replace(_impl=model.opt._impl.replace(warn_overflow=0)))
    contacts = data0._impl.contact.dist.shape[0]
    rows = data0._impl.efc_J.shape[0]
    data = mjx.make_data(
        mj_model,
        impl="warp",
        device=local_device(),
        naconmax=2 * contacts * config.warp_max_envs,
        njmax=2 * rows,
    )
    empty = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype) if not np.any(x) else x  # noqa: E731
    return model, jax.tree.map(empty, data)


# ---------------------------------------------------------------------------------------------
# Small math helpers
# ---------------------------------------------------------------------------------------------


def _yaw_rotation(yaw: jax.Array) -> jax.Array:
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    return jnp.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _roll_pitch(rot: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Roll and pitch (rad) of a body rotation matrix (ZYX Euler angles)."""
    pitch = jnp.arcsin(jnp.clip(-rot[2, 0], -1.0, 1.0))
    roll = jnp.arctan2(rot[2, 1], rot[2, 2])
    return roll, pitch


def _uniform(key: jax.Array, bounds: tuple[float, float], shape: tuple[int, ...] = ()) -> jax.Array:
    return jax.random.uniform(key, shape, jnp.float32, bounds[0], bounds[1])


# ---------------------------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------------------------


class WildRobotEnv:
    """Joystick walking. Holds only constants (model, ids, layouts); all that changes is State."""

    def __init__(self, config: EnvConfig = EnvConfig()):
        self.config = config
        mj_model = load_model(config)
        self.mj_model = mj_model
        self.ids = resolve_names(mj_model, config)
        self.nu = len(config.actuators)
        self.nfeet = len(config.feet_sites)
        self.n_substeps = int(round(config.ctrl_dt / mj_model.opt.timestep))
        self.model = mjx.put_model(mj_model, device=local_device())
        self._data0 = mjx.make_data(self.model, device=local_device())
        # The model `step` simulates: this one, or MuJoCo Warp's (with its empty Data). A Warp
        # call steps a whole batch on one device: VecEnv gives each device its own envs.
        self.physics_model, self._warp_data = self.model, None
        self.steps_per_device = config.impl == "warp"
        if config.impl == "warp":
            self.physics_model, self._warp_data = warp_physics(mj_model, self._data0, config)
        # The home pose's kinematics do not depend on the randomized parameters, so reset can start
        # from one precomputed MuJoCo forward pass instead of an MJX one per reset.
        home = mj_model.key(config.home_keyframe)
        self.home_data = self.forward_states(home.qpos[None], home.qvel[None])
        self.home_data = jax.tree.map(lambda x: x[0], self.home_data)

        key = mj_model.key(config.home_keyframe)
        self.home_qpos = jnp.asarray(key.qpos, jnp.float32)
        ids = self.ids
        self.home_joints = self.home_qpos[ids.qpos]
        self.joint_lo = jnp.asarray(mj_model.jnt_range[ids.joints, 0], jnp.float32)
        self.joint_hi = jnp.asarray(mj_model.jnt_range[ids.joints, 1], jnp.float32)
        mid, half = (self.joint_lo + self.joint_hi) / 2, (self.joint_hi - self.joint_lo) / 2
        self.soft_lo = mid - config.soft_joint_limit * half
        self.soft_hi = mid + config.soft_joint_limit * half
        self.sole_radius = jnp.asarray(sole_thickness(mj_model, ids.soles, config), jnp.float32)
        self.force_lo, self.force_hi = jnp.asarray(force_limits(mj_model, ids.actuators))

        n, nfeet, nsole = self.nu, self.nfeet, len(config.sole_geoms)
        self.actor_layout = Layout(
            (
                ("gravity", 3),  # gravity direction in the IMU frame
                ("gyro", 3),  # IMU angular velocity
                ("joint_pos", n),  # relative to home
                ("joint_vel", n),
                ("last_action", n),
                ("command", 3),  # forward, lateral, yaw rate
                ("phase", 2),  # cos, sin of the gait clock
            )
        )
        nparams = 9 + n + mj_model.nbody - 1
        self.critic_layout = Layout(
            self.actor_layout.pieces
            + (
                ("base_lin_vel", 3),  # base frame
                ("base_height", 1),
                ("foot_contact", nsole),
                ("feet_height", nfeet),
                ("feet_vel", 3 * nfeet),  # world frame
                ("domain_params", nparams),  # DomainParams.vector()
            )
        )
        self.obs_size = self.actor_layout.size
        self.critic_obs_size = self.critic_layout.size
        self.action_size = n

    def forward_states(self, qpos: np.ndarray, qvel: np.ndarray) -> mjx.Data:
        """MJX data of poses (T, nq) with velocities (T, nv), stacked: starts for `reset_to`.

        One MuJoCo (C) forward pass per pose at the nominal model, done once, not per reset; the
        servos hold the pose (their targets are its joint angles).
        """
        mj_data = mujoco.MjData(self.mj_model)
        frames = []
        for q, v in zip(np.asarray(qpos), np.asarray(qvel), strict=True):
            mj_data.qpos[:], mj_data.qvel[:] = q, v
            mj_data.ctrl[self.ids.actuators] = q[self.ids.qpos]
            mujoco.mj_forward(self.mj_model, mj_data)
            data = mjx.put_data(self.mj_model, mj_data, device=local_device())
            frames.append(jax.tree.map(lambda x, y: np.asarray(x, y.dtype), data, self._data0))
        return jax.tree.map(lambda *x: jnp.asarray(np.stack(x)), *frames)

    # -- randomization ----------------------------------------------------------------------

    def sample_params(self, key: jax.Array) -> DomainParams:
        """Draw one episode's physical parameters from the configured ranges."""
        r = self.config.randomization
        k = jax.random.split(key, 11)
        return DomainParams(
            friction=_uniform(k[0], r.floor_friction),
            mass_scale=_uniform(k[1], r.link_mass_scale, (self.mj_model.nbody,)),
            torso_mass_offset=_uniform(k[2], r.torso_mass_offset),
            kp_scale=_uniform(k[3], r.kp_scale),
            kv_scale=_uniform(k[4], r.kv_scale),
            damping_scale=_uniform(k[5], r.damping_scale),
            frictionloss_scale=_uniform(k[6], r.frictionloss_scale),
            armature_scale=_uniform(k[7], r.armature_scale),
            joint_offset=_uniform(k[8], r.joint_offset, (self.nu,)),
            action_delay=jax.random.randint(k[9], (), r.action_delay[0], r.action_delay[1] + 1),
            push_speed=_uniform(k[10], r.push_velocity),
        )

    def randomized_model(self, p: DomainParams) -> mjx.Model:
        """The nominal MJX model with one episode's parameters applied (cheap: leaf replacement)."""
        m, ids = self.physics_model, self.ids
        mass = m.body_mass * p.mass_scale.at[0].set(1.0)
        mass = mass.at[ids.torso].add(p.torso_mass_offset)
        inertia = m.body_inertia * (mass / jnp.maximum(m.body_mass, 1e-9))[:, None]
        gain = m.actuator_gainprm[ids.actuators, 0] * p.kp_scale
        kv = -m.actuator_biasprm[ids.actuators, 2] * p.kv_scale
        dofs = ids.dofs
        return m.replace(
            geom_friction=m.geom_friction.at[ids.friction_geoms, 0].set(p.friction),
            body_mass=mass,
            body_inertia=inertia,
            actuator_gainprm=m.actuator_gainprm.at[ids.actuators, 0].set(gain),
            actuator_biasprm=m.actuator_biasprm.at[ids.actuators, 1]
            .set(-gain)
            .at[ids.actuators, 2]
            .set(-kv),
            dof_damping=m.dof_damping.at[dofs].multiply(p.damping_scale),
            dof_frictionloss=m.dof_frictionloss.at[dofs].multiply(p.frictionloss_scale),
            dof_armature=m.dof_armature.at[dofs].multiply(p.armature_scale),
        )

    # -- reset / step -------------------------------------------------------------------------

    def reset(self, key: jax.Array) -> State:
        """A robot standing in the home pose with a fresh command, clock and randomization."""
        return self.reset_to(key, self.home_data)

    def reset_to(self, key: jax.Array, data: mjx.Data, phase: jax.Array | None = None) -> State:
        """`reset`, but starting from `data` (e.g. a reference frame from `forward_states`).

        The servos start at the pose's joint angles (the action that maps to them, held by the
        filter and delay line), so a mid-stride start is not yanked towards home. The gait clock
        starts at `phase` (rad), or at random.
        """
        c = self.config
        rng, k_params, k_cmd, k_push, k_phase, k_obs = jax.random.split(key, 6)
        params = self.sample_params(k_params)
        joints = data.qpos[self.ids.qpos]
        start = jnp.clip((joints - self.home_joints) / c.action_scale, -1.0, 1.0)  # 0 at home
        data = data.replace(ctrl=self._ctrl(start, params))
        if phase is None:
            phase = jax.random.uniform(k_phase, (), jnp.float32, 0.0, 2 * jnp.pi)
        info = EnvInfo(
            rng=rng,
            step=jnp.zeros((), jnp.int32),
            command=self.sample_command(k_cmd),
            phase=jnp.asarray(phase, jnp.float32),
            last_action=start,
            filtered_action=start,
            action_buffer=jnp.broadcast_to(start, (c.max_action_delay + 1, self.nu)),
            feet_air_time=jnp.zeros(self.nfeet),
            last_contact=jnp.ones(self.nfeet, bool),
            feet_pos=data.site_xpos[self.ids.feet],
            push_countdown=self._push_countdown(k_push),
            params=params,
        )
        sensed = self._sense(data, info)
        obs, critic_obs = self._observe(sensed, info, k_obs)
        rewards = {name: jnp.zeros(()) for name in _fields(c.reward_scales)}
        return State(
            data=data,
            obs=obs,
            critic_obs=critic_obs,
            reward=jnp.zeros(()),
            terminated=jnp.zeros((), bool),
            truncated=jnp.zeros((), bool),
            rewards=rewards,
            metrics=self._metrics(sensed, info, jnp.zeros((), bool), jnp.zeros((), bool)),
            info=info,
        )

    def step(self, state: State, action: jax.Array) -> State:
        """Advance one control step: filter / delay the action, simulate, observe, reward."""
        c, info = self.config, state.info
        rng, k_push, k_cmd, k_obs = jax.random.split(info.rng, 4)
        action = jnp.clip(action, -1.0, 1.0)

        # -- action pipeline: low-pass filter, then delay -----------------------------------
        filtered = (
            c.action_filter_alpha * action + (1 - c.action_filter_alpha) * info.filtered_action
        )
        buffer = jnp.roll(info.action_buffer, 1, axis=0).at[0].set(filtered)
        applied = buffer[info.params.action_delay]

        # -- push: a random horizontal velocity kick at random intervals --------------------
        push = info.push_countdown <= 0
        angle, next_countdown = self.sample_push(k_push)
        kick = info.params.push_speed * jnp.stack([jnp.cos(angle), jnp.sin(angle)]) * push
        qvel = state.data.qvel.at[:2].add(kick)
        data = state.data.replace(qvel=qvel, ctrl=self._ctrl(applied, info.params))

        # -- physics ------------------------------------------------------------------------
        new_data, fits = self.simulate(self.randomized_model(info.params), data)
        finite = jnp.isfinite(new_data.qpos).all() & jnp.isfinite(new_data.qvel).all() & fits
        # A non-finite physics state (or, with Warp, one whose contacts overflowed the buffers)
        # never reaches observations or rewards: keep the last good one (sanitized, in case the bad
        # values came in with it); the wrapper then resets this robot.
        new_data = jax.tree.map(
            lambda new, old: jnp.where(finite, new, jnp.nan_to_num(old, posinf=0.0, neginf=0.0)),
            new_data,
            state.data,
        )

        # -- task bookkeeping -----------------------------------------------------------------
        step = info.step + 1
        resample = step % max(1, round(c.command_resample_seconds / c.ctrl_dt)) == 0
        command = jnp.where(resample, self.sample_command(k_cmd), info.command)
        phase = jnp.mod(info.phase + 2 * jnp.pi * c.gait_frequency * c.ctrl_dt, 2 * jnp.pi)
        info = info.replace(
            rng=rng,
            step=step,
            command=command,
            phase=phase,
            filtered_action=filtered,
            action_buffer=buffer,
            push_countdown=jnp.where(push, next_countdown, info.push_countdown - 1),
        )
        sensed = self._sense(new_data, info)

        roll, pitch = sensed["roll"], sensed["pitch"]
        height = sensed["base_height"]
        fallen = (height < c.min_base_height) | (height > c.max_base_height)
        fallen |= (jnp.abs(roll) > c.max_tilt) | (jnp.abs(pitch) > c.max_tilt)
        terminated = fallen | ~finite
        truncated = (step >= c.episode_length) & ~terminated

        terms, info = self._reward_terms(sensed, info, action, terminated)
        scales = c.reward_scales
        # A blow-up scores nothing but its termination: it must cost what a fall costs, or the
        # policy would learn that breaking the physics is the cheaper way out.
        valid = {k: finite | (k == "termination") for k in terms}
        rewards = {k: v * getattr(scales, k) * c.ctrl_dt * valid[k] for k, v in terms.items()}
        reward = sum(rewards.values())
        info = info.replace(last_action=action, feet_pos=sensed["feet_pos"])
        obs, critic_obs = self._observe(sensed, info, k_obs)
        return State(
            data=new_data,
            obs=obs,
            critic_obs=critic_obs,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            rewards=rewards,
            metrics=self._metrics(sensed, info, push, ~finite),
            info=info,
        )

    def simulate(self, model: mjx.Model, data: mjx.Data) -> tuple[mjx.Data, jax.Array]:
        """One control step of physics (n_substeps MJX steps) and whether it fit its buffers.

        With Warp, `data` stays MJX's JAX-layout Data (every leaf per env, so the wrapper's
        resets, sharding and checkpoints treat it like any state): its public fields go into a
        fresh Warp Data and come back out. Warp's buffers (contacts pooled over all the envs, the
        constraint rows) live only inside this step; a step that overflowed them does not fit.
        """
        step = lambda d, _: (mjx.step(model, d), None)  # noqa: E731
        if self._warp_data is None:
            return jax.lax.scan(step, data, None, self.n_substeps)[0], jnp.ones((), bool)
        fresh = jax.tree.map(
            lambda x: jnp.zeros(x.shape, x.dtype) if isinstance(x, jax.ShapeDtypeStruct) else x,
            self._warp_data,
        )
        fields = {name: getattr(data, name) for name in DATA_FIELDS}
        warp_data = jax.lax.scan(step, fresh.replace(**fields), None, self.n_substeps)[0]
        fits = jnp.all((warp_data._impl.overflow & WARP_CAPACITY_OVERFLOWS) == 0)
        return data.replace(**{name: getattr(warp_data, name) for name in DATA_FIELDS}), fits

    def check_batch(self, num_envs: int, devices: int = 1) -> None:
        """Raise ConfigError if `num_envs` of these envs (all seeds together), split over
        `devices` devices (those of every process), cannot be stepped."""
        c = self.config
        per_device = num_envs // devices
        if c.impl == "warp" and per_device > c.warp_max_envs:
            raise ConfigError(
                f"env.warp_max_envs {c.warp_max_envs} is below the {per_device} envs Warp steps "
                "at once on a device (num_envs x num_seeds / devices): raise it (it sizes "
                "Warp's contact buffers)"
            )

    def set_command(self, state: State, command: jax.Array) -> State:
        """`state` with a new joystick command (forward, lateral m/s, yaw rad/s), obs included."""
        command = jnp.asarray(command, jnp.float32)
        obs = state.obs.at[self.actor_layout.slice("command")].set(command)
        critic_obs = state.critic_obs.at[self.critic_layout.slice("command")].set(command)
        info = state.info.replace(command=command)
        return state.replace(obs=obs, critic_obs=critic_obs, info=info)

    # -- pieces -------------------------------------------------------------------------------

    def sample_command(self, key: jax.Array) -> jax.Array:
        c = self.config
        k_x, k_y, k_yaw, k_zero = jax.random.split(key, 4)
        command = jnp.stack(
            [_uniform(k_x, c.lin_vel_x), _uniform(k_y, c.lin_vel_y), _uniform(k_yaw, c.ang_vel_yaw)]
        )
        # fold_in, not a fifth split: configs without turning in place keep their random streams
        turn = jax.random.uniform(jax.random.fold_in(k_zero, 1)) < c.turn_in_place_prob
        command = jnp.where(turn, command * jnp.array([0.0, 0.0, 1.0]), command)
        return jnp.where(jax.random.uniform(k_zero) < c.zero_command_prob, 0.0, command)

    def sample_push(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A push direction (rad) and the control steps to the push after it, independent."""
        k_angle, k_interval = jax.random.split(key)
        angle = jax.random.uniform(k_angle, (), jnp.float32, 0.0, 2 * jnp.pi)
        return angle, self._push_countdown(k_interval)

    def _push_countdown(self, key: jax.Array) -> jax.Array:
        seconds = _uniform(key, self.config.randomization.push_interval)
        return jnp.round(seconds / self.config.ctrl_dt).astype(jnp.int32)

    def _ctrl(self, action: jax.Array, params: DomainParams) -> jax.Array:
        """Servo position targets: home + scale * action, clipped to the range, plus zero error."""
        target = self.home_joints + self.config.action_scale * action
        return jnp.clip(target, self.joint_lo, self.joint_hi) + params.joint_offset

    def _sense(self, data: mjx.Data, info: EnvInfo) -> dict[str, jax.Array]:
        """Clean physical quantities the observations and rewards are made of."""
        ids = self.ids
        imu_rot = data.site_xmat[ids.imu]
        base_rot = data.xmat[ids.root]
        roll, pitch = _roll_pitch(base_rot)
        feet_pos = data.site_xpos[ids.feet]
        sole_z = data.geom_xpos[ids.soles, 2] - self.sole_radius
        sole_contact = sole_z < self.config.contact_height
        return {
            "gravity": imu_rot.T @ jnp.array([0.0, 0.0, -1.0]),
            "gyro": imu_rot.T @ data.cvel[ids.imu_body, :3],
            # Encoders read the servo's own zero, which is off by the joint offset.
            "joint_pos": data.qpos[ids.qpos] - info.params.joint_offset - self.home_joints,
            "joint_vel": data.qvel[ids.qvel],
            "base_lin_vel": base_rot.T @ data.qvel[:3],
            "base_ang_vel": base_rot.T @ data.cvel[ids.root, :3],
            # Yaw rate (world z) of the IMU's body relative to the base: 0 if the IMU is on it.
            "twist_rate": data.cvel[ids.imu_body, 2] - data.cvel[ids.root, 2],
            "base_gravity": base_rot.T @ jnp.array([0.0, 0.0, -1.0]),
            "base_height": data.qpos[2],
            "roll": roll,
            "pitch": pitch,
            "feet_pos": feet_pos,
            "feet_vel": (feet_pos - info.feet_pos) / self.config.ctrl_dt,
            # sin^2 of each sole's tilt: the horizontal part of its foot site's z axis.
            "feet_tilt": jnp.sum(data.site_xmat[ids.feet][:, :2, 2] ** 2, axis=1),
            "sole_contact": sole_contact,
            "foot_contact": sole_contact.reshape(self.nfeet, -1).any(axis=1),
            "joint_qpos": data.qpos[ids.qpos],
            "actuator_force": data.actuator_force,
        }

    def _observe(
        self, s: dict[str, jax.Array], info: EnvInfo, key: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Actor observation (noisy, what the robot senses) and critic observation (privileged)."""
        noise = self.config.noise
        clean = {
            "gravity": s["gravity"],
            "gyro": s["gyro"],
            "joint_pos": s["joint_pos"],
            "joint_vel": s["joint_vel"],
            "last_action": info.last_action,
            "command": info.command,
            "phase": jnp.stack([jnp.cos(info.phase), jnp.sin(info.phase)]),
        }
        keys = jax.random.split(key, 4)
        noisy = dict(clean)
        for k, name in zip(keys, ("gravity", "gyro", "joint_pos", "joint_vel"), strict=True):
            noisy[name] = clean[name] + getattr(noise, name) * jax.random.normal(
                k, clean[name].shape
            )
        privileged = clean | {
            "base_lin_vel": s["base_lin_vel"],
            "base_height": s["base_height"],
            "foot_contact": s["sole_contact"],
            "feet_height": s["feet_pos"][:, 2],
            "feet_vel": s["feet_vel"],
            "domain_params": info.params.vector(),
        }
        return self.actor_layout.build(noisy), self.critic_layout.build(privileged)

    def _reward_terms(
        self, s: dict[str, jax.Array], info: EnvInfo, action: jax.Array, terminated: jax.Array
    ) -> tuple[dict[str, jax.Array], EnvInfo]:
        """Unscaled reward terms (costs positive; the scales carry the sign)."""
        c = self.config
        cmd = info.command
        walking = jnp.linalg.norm(cmd) > 0.05
        lin_err = jnp.sum((cmd[:2] - s["base_lin_vel"][:2]) ** 2)
        yaw_err = (cmd[2] - s["base_ang_vel"][2]) ** 2

        # Air time at touchdown (a foot in contact this step or the last counts as touching).
        contact = s["foot_contact"]
        touching = contact | info.last_contact
        air_time = info.feet_air_time + c.ctrl_dt
        first_contact = (info.feet_air_time > 0) & touching
        air_reward = jnp.sum((air_time - c.feet_air_time_target) * first_contact) * walking
        info = info.replace(feet_air_time=air_time * ~touching, last_contact=contact)

        # Swing-foot height from the gait clock: left swings in the first half, right in the second.
        foot_phase = info.phase + jnp.pi * jnp.arange(self.nfeet)
        swing = jnp.maximum(jnp.sin(foot_phase), 0.0)
        height_err = jnp.sum((s["feet_pos"][:, 2] - c.swing_height * swing) ** 2)

        q = s["joint_qpos"]
        past_limits = jnp.maximum(self.soft_lo - q, 0.0) + jnp.maximum(q - self.soft_hi, 0.0)
        contact_speed = jnp.sum(s["feet_vel"][:, :2] ** 2, axis=1)
        force = s["actuator_force"][self.ids.actuators]
        terms = {
            "tracking_lin_vel": jnp.exp(-lin_err / c.tracking_sigma),
            "tracking_ang_vel": jnp.exp(-yaw_err / c.yaw_tracking_sigma),
            "ang_vel_error": yaw_err,
            "torso_twist": s["twist_rate"] ** 2,
            "orientation": jnp.sum(s["base_gravity"][:2] ** 2),
            "base_height": (s["base_height"] - c.base_height_target) ** 2,
            "torques": jnp.sum(s["actuator_force"] ** 2),
            "torque_limit": jnp.sum(
                (force >= AT_LIMIT * self.force_hi) | (force <= AT_LIMIT * self.force_lo),
                dtype=jnp.float32,
            ),
            "action_rate": jnp.sum((action - info.last_action) ** 2),
            "feet_air_time": air_reward,
            "feet_phase": jnp.exp(-height_err / 0.0025) * walking,
            "feet_slip": jnp.sum(contact_speed * contact),
            "feet_tilt": jnp.sum(s["feet_tilt"] * contact),
            "joint_limits": jnp.sum(past_limits),
            "pose": jnp.sum(s["joint_pos"] ** 2),
            "termination": terminated.astype(jnp.float32),
        }
        return terms, info

    def _metrics(
        self, s: dict[str, jax.Array], info: EnvInfo, push: jax.Array, nan: jax.Array
    ) -> dict[str, jax.Array]:
        return {
            "forward_velocity": s["base_lin_vel"][0],
            "command_forward": info.command[0],
            "forward_velocity_error": jnp.abs(s["base_lin_vel"][0] - info.command[0]),
            "lateral_velocity_error": jnp.abs(s["base_lin_vel"][1] - info.command[1]),
            "yaw_rate_error": jnp.abs(s["base_ang_vel"][2] - info.command[2]),
            "base_height": s["base_height"],
            "push": push.astype(jnp.float32),
            "nan": nan.astype(jnp.float32),
        }

    # -- Left-right mirror --------------------------------------------------------------------

    def mirror(self) -> tuple[np.ndarray, np.ndarray]:
        """Matrices that reflect an actor observation and an action through the robot's sagittal
        plane (the base frame's x-z plane at the home pose), for a symmetry loss (ppo.py's
        `symmetry_coef`).

        Found from the model, so another robot gets its own: each joint named "left..." trades
        places with the one named "right..." (others map to themselves), with the sign that makes
        its rotation the mirror image of its partner's (`mirror_names` says which part of a name
        tells left from right). Directions reflect (y flips); rotation
        axes and angular rates reflect with the opposite sign (x and z flip); the gait clock moves
        half a cycle (the other foot swings). Raises ConfigError where the model is not a mirror
        image of itself in this sense.
        """
        if self.nfeet != 2:
            raise ConfigError(f"mirror: the gait clock mirrors for two feet, not {self.nfeet}")
        joints, vector = mirror_image(
            self.mj_model, self.ids, np.asarray(self.home_qpos), self.config.mirror_names
        )
        home = np.asarray(self.home_joints)
        if not np.allclose(joints @ home, home, atol=1e-4):
            raise ConfigError(f"mirror: home keyframe '{self.config.home_keyframe}' is lopsided")
        blocks = {"gravity": vector, "gyro": -vector, "joint_pos": joints, "joint_vel": joints,
                  "last_action": joints, "command": np.diag([1.0, -1.0, -1.0]),
                  "phase": -np.eye(2)}  # fmt: skip
        layout = self.actor_layout
        obs = np.zeros((layout.size, layout.size))
        for name, _ in layout.pieces:
            if name not in blocks:
                raise ConfigError(f"mirror: no reflection for observation piece '{name}'")
            obs[layout.slice(name), layout.slice(name)] = blocks[name]
        return obs, joints

    # -- AMP features -------------------------------------------------------------------------

    def amp_features(self, qpos: jax.Array, qvel: jax.Array) -> jax.Array:
        """Motion features of one frame from (qpos, qvel) alone, for simulation and reference data.

        Joint positions and velocities, base linear and angular velocity in the heading frame
        (yaw removed), base height, and foot positions relative to the base in the heading frame.
        """
        ids = self.ids
        qpos, qvel = jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32)
        data = mjx.kinematics(self.model, self._data0.replace(qpos=qpos, qvel=qvel))
        base_rot = data.xmat[ids.root]
        heading = _yaw_rotation(jnp.arctan2(base_rot[1, 0], base_rot[0, 0]))
        base_pos = data.xpos[ids.root]
        feet = (data.site_xpos[ids.feet] - base_pos) @ heading  # rows: heading.T @ (p - base)
        ang_vel_world = base_rot @ qvel[3:6]  # free-joint angular velocity is in the body frame
        return jnp.concatenate(
            [
                qpos[ids.qpos],
                qvel[ids.qvel],
                heading.T @ qvel[:3],
                heading.T @ ang_vel_world,
                qpos[2:3],
                feet.reshape(-1),
            ]
        )

    @property
    def amp_feature_size(self) -> int:
        return 2 * self.nu + 7 + 3 * self.nfeet

    @property
    def amp_feature_groups(self) -> dict[str, slice]:
        """Where each quantity lies in `amp_features`' output, in order."""
        sizes = {"joint_pos": self.nu, "joint_vel": self.nu, "base_lin_vel": 3, "base_ang_vel": 3,
                 "base_height": 1, "feet_pos": 3 * self.nfeet}  # fmt: skip
        groups, start = {}, 0
        for name, size in sizes.items():
            groups[name], start = slice(start, start + size), start + size
        return groups


def _fields(dc: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(dc)]


# ---------------------------------------------------------------------------------------------
# Demo: reset, step with random actions, print throughput
# ---------------------------------------------------------------------------------------------


def load_env_config(path: str | None = None) -> EnvConfig:
    """EnvConfig from the [env] section of a training config file (and the files it extends)."""
    config = load_file(EnvConfig(), path, section="env") if path else EnvConfig()
    check(config)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="a training config (TOML/JSON); its [env] section is used")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="control steps per timed call")
    args = parser.parse_args()

    try:
        env = WildRobotEnv(load_env_config(args.config))
    except ConfigError as e:
        parser.error(str(e))
    print(f"model {env.config.model_path}: {env.nu} actuators, {env.n_substeps} substeps/control")
    print(f"actor obs {env.obs_size}, critic obs {env.critic_obs_size}")

    def rollout(state, key):
        def body(state, k):
            action = jax.random.uniform(k, (args.num_envs, env.nu), minval=-1.0, maxval=1.0)
            state = jax.vmap(env.step)(state, action)
            return state, state.terminated.mean()

        return jax.lax.scan(body, state, jax.random.split(key, args.steps))

    reset = jax.jit(jax.vmap(env.reset))
    rollout = jax.jit(rollout)
    key = jax.random.key(0)
    state = reset(jax.random.split(key, args.num_envs))
    t0 = time.perf_counter()
    state, _ = jax.block_until_ready(rollout(state, key))  # compile (and one warm-up run)
    print(f"compile + first call: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    state, fell = jax.block_until_ready(rollout(state, jax.random.key(1)))
    seconds = time.perf_counter() - t0
    sps = args.num_envs * args.steps / seconds
    print(f"{sps:,.0f} control steps/s at {args.num_envs} envs (benchmarks/env_speed.py for more)")
    print(f"down after {2 * args.steps} random-action steps, no resets: {float(fell[-1]):.0%}")


if __name__ == "__main__":
    main()
