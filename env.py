"""WildRobot velocity-command walking on MuJoCo MJX: a pure, jittable, vmappable environment.

`WildRobotEnv(config).reset(key) -> State` and `.step(state, action) -> State` are pure functions of
pytrees, so `jax.jit(jax.vmap(env.step))` runs thousands of robots at once. Any MJCF robot with a
floating base plugs in through `EnvConfig` (model path, actuator / joint / site / geom names).

    python env.py                      # reset, step with random actions, print throughput
    python env.py --num-envs 1024
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import io
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from config import ConfigError
from interface import State

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
    """Scale of each reward term per simulated second (terms are integrated over ctrl_dt)."""

    tracking_lin_vel: float = 2.0  # exp(-|cmd_xy - v_xy|^2 / sigma), base frame
    tracking_ang_vel: float = 0.5  # exp(-(cmd_yaw - w_z)^2 / sigma)
    orientation: float = -5.0  # squared tilt of gravity in the base frame
    base_height: float = -50.0  # squared error to base_height_target
    torques: float = -2e-4  # sum of squared actuator forces
    action_rate: float = -0.02  # sum of squared action changes
    feet_air_time: float = 2.0  # air time beyond feet_air_time_target at touchdown (walking only)
    feet_phase: float = 1.0  # swing-foot height following the gait clock (walking only)
    feet_slip: float = -0.25  # squared horizontal speed of feet in contact
    joint_limits: float = -5.0  # distance past the soft joint limits
    pose: float = -0.5  # squared deviation from the home pose
    termination: float = -50.0  # once per fall; x ctrl_dt this is a lump penalty of -1


@dataclasses.dataclass(frozen=True)
class Randomization:
    """Per-episode domain randomization ranges (lo, hi); a zero-width range disables that item."""

    floor_friction: tuple[float, float] = (0.4, 1.0)
    link_mass_scale: tuple[float, float] = (0.9, 1.1)  # per body
    torso_mass_offset: tuple[float, float] = (-0.1, 0.1)  # kg, added to torso_body
    kp_scale: tuple[float, float] = (0.9, 1.1)
    kv_scale: tuple[float, float] = (0.9, 1.1)
    damping_scale: tuple[float, float] = (0.8, 1.2)
    frictionloss_scale: tuple[float, float] = (0.8, 1.2)
    armature_scale: tuple[float, float] = (0.95, 1.05)
    joint_offset: tuple[float, float] = (-0.03, 0.03)  # rad, servo zero error
    action_delay: tuple[int, int] = (0, 1)  # control steps, at most EnvConfig.max_action_delay
    push_interval: tuple[float, float] = (5.0, 10.0)  # seconds between pushes
    push_velocity: tuple[float, float] = (0.0, 0.3)  # m/s kick per episode, random direction


@dataclasses.dataclass(frozen=True)
class Noise:
    """Standard deviations of the actor's sensor noise (the critic sees clean values)."""

    gravity: float = 0.035  # about 2 degrees of orientation error
    gyro: float = 0.05  # rad/s
    joint_pos: float = 0.01  # rad
    joint_vel: float = 0.5  # rad/s


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Everything the environment needs; any floating-base MJCF robot plugs in through the names."""

    model_path: str = "assets/scene.xml"  # relative paths resolve against this file's folder
    actuators: tuple[str, ...] = (
        "right_hip_pitch", "right_hip_roll", "right_knee_pitch", "right_ankle_pitch",
        "left_hip_pitch", "left_hip_roll", "left_knee_pitch", "left_ankle_pitch", "waist_yaw",
    )  # fmt: skip
    joints: tuple[str, ...] = ()  # joint driven by each actuator; empty = same names as actuators
    root_body: str = "waist"  # the body with the free joint
    torso_body: str = "torso"  # gets the torso mass offset
    imu_site: str = "imu"
    feet_sites: tuple[str, ...] = ("left_foot", "right_foot")
    sole_geoms: tuple[str, ...] = (
        "left_sole_front", "left_sole_back", "right_sole_front", "right_sole_back",
    )  # fmt: skip  # grouped per foot, in feet_sites order
    home_keyframe: str = "home"
    # Physics: chosen by benchmarks/solver_sweep.py (see README).
    ctrl_dt: float = 0.02
    sim_dt: float = 0.005
    solver: str = "cg"  # "cg" or "newton"
    iterations: int = 4
    ls_iterations: int = 4
    # Control.
    action_scale: float = 0.3  # rad per unit action around the home pose
    action_filter_alpha: float = 1.0  # weight of the new action in a low-pass filter; 1 = off
    max_action_delay: int = 1  # size of the action buffer; sampled delay comes from randomization
    episode_length: int = 500  # control steps (truncation)
    # Task.
    lin_vel_x: tuple[float, float] = (0.0, 0.5)
    lin_vel_y: tuple[float, float] = (0.0, 0.0)
    ang_vel_yaw: tuple[float, float] = (0.0, 0.0)
    zero_command_prob: float = 0.1  # fraction of commands that are "stand still"
    command_resample_seconds: float = 5.0
    gait_frequency: float = 1.5  # Hz of the phase clock
    tracking_sigma: float = 0.1
    base_height_target: float = 0.46
    swing_height: float = 0.04  # m, peak foot height the feet_phase term asks for
    feet_air_time_target: float = 0.25  # s
    contact_height: float = 0.005  # m above the floor at which a sole counts as touching
    soft_joint_limit: float = 0.95  # fraction of the joint range free of the joint_limits cost
    # Termination.
    min_base_height: float = 0.20
    max_base_height: float = 0.70
    max_tilt: float = 0.8  # rad, |roll| or |pitch|
    reward_scales: RewardScales = RewardScales()
    randomization: Randomization = Randomization()
    noise: Noise = Noise()


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
        self.ids = _resolve_names(mj_model, config)
        self.nu = len(config.actuators)
        self.nfeet = len(config.feet_sites)
        self.n_substeps = int(round(config.ctrl_dt / mj_model.opt.timestep))
        self._check_ranges()
        self.model = mjx.put_model(mj_model)
        self._data0 = mjx.make_data(self.model)
        # The home pose's kinematics do not depend on the randomized parameters, so reset can start
        # from one precomputed MuJoCo forward pass instead of an MJX one per reset.
        home = mujoco.MjData(mj_model)
        mujoco.mj_resetDataKeyframe(mj_model, home, mj_model.key(config.home_keyframe).id)
        mujoco.mj_forward(mj_model, home)
        self._home_data = jax.tree.map(
            lambda x, y: jnp.asarray(x, y.dtype), mjx.put_data(mj_model, home), self._data0
        )

        key = mj_model.key(config.home_keyframe)
        self.home_qpos = jnp.asarray(key.qpos, jnp.float32)
        ids = self.ids
        self.home_joints = self.home_qpos[ids.qpos]
        self.joint_lo = jnp.asarray(mj_model.jnt_range[ids.joints, 0], jnp.float32)
        self.joint_hi = jnp.asarray(mj_model.jnt_range[ids.joints, 1], jnp.float32)
        mid, half = (self.joint_lo + self.joint_hi) / 2, (self.joint_hi - self.joint_lo) / 2
        self.soft_lo = mid - config.soft_joint_limit * half
        self.soft_hi = mid + config.soft_joint_limit * half
        self.sole_radius = jnp.asarray(_sole_thickness(mj_model, ids.soles, config), jnp.float32)

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

    def _check_ranges(self) -> None:
        c, r = self.config, self.config.randomization
        for f in dataclasses.fields(r):
            lo, hi = getattr(r, f.name)
            if lo > hi:
                raise ConfigError(f"randomization.{f.name} has lo {lo} > hi {hi}")
        if not 0 <= r.action_delay[0] <= r.action_delay[1] <= c.max_action_delay:
            raise ConfigError(
                f"randomization.action_delay {r.action_delay} must lie in 0..max_action_delay "
                f"({c.max_action_delay})"
            )
        if abs(self.n_substeps * self.mj_model.opt.timestep - c.ctrl_dt) > 1e-9:
            raise ConfigError(f"ctrl_dt {c.ctrl_dt} is not a multiple of sim_dt {c.sim_dt}")
        if not 0.0 < c.action_filter_alpha <= 1.0:
            raise ConfigError(f"action_filter_alpha {c.action_filter_alpha} must be in (0, 1]")

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
        m, ids = self.model, self.ids
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
        c = self.config
        rng, k_params, k_cmd, k_push, k_phase, k_obs = jax.random.split(key, 6)
        params = self.sample_params(k_params)
        data = self._home_data.replace(ctrl=self._ctrl(jnp.zeros(self.nu), params))
        zeros = jnp.zeros(self.nu)
        info = EnvInfo(
            rng=rng,
            step=jnp.zeros((), jnp.int32),
            command=self.sample_command(k_cmd),
            phase=jax.random.uniform(k_phase, (), jnp.float32, 0.0, 2 * jnp.pi),
            last_action=zeros,
            filtered_action=zeros,
            action_buffer=jnp.zeros((c.max_action_delay + 1, self.nu)),
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
        angle = jax.random.uniform(k_push, (), jnp.float32, 0.0, 2 * jnp.pi)
        kick = info.params.push_speed * jnp.stack([jnp.cos(angle), jnp.sin(angle)]) * push
        qvel = state.data.qvel.at[:2].add(kick)
        data = state.data.replace(qvel=qvel, ctrl=self._ctrl(applied, info.params))

        # -- physics ------------------------------------------------------------------------
        model = self.randomized_model(info.params)
        new_data = jax.lax.scan(
            lambda d, _: (mjx.step(model, d), None), data, None, self.n_substeps
        )[0]
        finite = jnp.isfinite(new_data.qpos).all() & jnp.isfinite(new_data.qvel).all()
        # A non-finite physics state never reaches observations or rewards: keep the last good one
        # (sanitized, in case the bad values came in with it); the wrapper then resets this robot.
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
            push_countdown=jnp.where(push, self._push_countdown(k_push), info.push_countdown - 1),
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
        rewards = {k: v * getattr(scales, k) * c.ctrl_dt * finite for k, v in terms.items()}
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
        return jnp.where(jax.random.uniform(k_zero) < c.zero_command_prob, 0.0, command)

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
            "base_gravity": base_rot.T @ jnp.array([0.0, 0.0, -1.0]),
            "base_height": data.qpos[2],
            "roll": roll,
            "pitch": pitch,
            "feet_pos": feet_pos,
            "feet_vel": (feet_pos - info.feet_pos) / self.config.ctrl_dt,
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
        terms = {
            "tracking_lin_vel": jnp.exp(-lin_err / c.tracking_sigma),
            "tracking_ang_vel": jnp.exp(-yaw_err / c.tracking_sigma),
            "orientation": jnp.sum(s["base_gravity"][:2] ** 2),
            "base_height": (s["base_height"] - c.base_height_target) ** 2,
            "torques": jnp.sum(s["actuator_force"] ** 2),
            "action_rate": jnp.sum((action - info.last_action) ** 2),
            "feet_air_time": air_reward,
            "feet_phase": jnp.exp(-height_err / 0.0025) * walking,
            "feet_slip": jnp.sum(contact_speed * contact),
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
            "base_height": s["base_height"],
            "push": push.astype(jnp.float32),
            "nan": nan.astype(jnp.float32),
        }

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


# ---------------------------------------------------------------------------------------------
# Model loading and name resolution (all before any compilation)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelIds:
    actuators: np.ndarray
    joints: np.ndarray
    qpos: np.ndarray
    qvel: np.ndarray
    dofs: np.ndarray
    root: int
    torso: int
    imu: int
    imu_body: int
    feet: np.ndarray
    soles: np.ndarray
    friction_geoms: np.ndarray


def resolve_path(path: str) -> str:
    """Absolute paths and paths existing from the working directory stay; others are in the repo."""
    return path if os.path.isabs(path) or os.path.exists(path) else os.path.join(ROOT, path)


def load_model(config: EnvConfig) -> mujoco.MjModel:
    """Load the MJCF file and apply the configured physics options; errors name the file."""
    path = resolve_path(config.model_path)
    if not os.path.isfile(path):
        raise ConfigError(f"model file not found: '{config.model_path}' (looked at {path})")
    try:
        model = mujoco.MjModel.from_xml_path(path)
    except ValueError as e:
        raise ConfigError(f"malformed model file '{path}': {e}") from None
    solvers = {"cg": mujoco.mjtSolver.mjSOL_CG, "newton": mujoco.mjtSolver.mjSOL_NEWTON}
    if config.solver not in solvers:
        raise ConfigError(f"solver '{config.solver}' is not one of {sorted(solvers)}")
    model.opt.timestep = config.sim_dt
    model.opt.solver = solvers[config.solver]
    model.opt.iterations = config.iterations
    model.opt.ls_iterations = config.ls_iterations
    model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_EULERDAMP
    return model


def _resolve_names(m: mujoco.MjModel, config: EnvConfig) -> ModelIds:
    """Map every configured name to a model id, naming the first one the model lacks."""

    def lookup(kind: str, obj: mujoco.mjtObj, name: str) -> int:
        i = mujoco.mj_name2id(m, obj, name)
        if i < 0:
            have = [mujoco.mj_id2name(m, obj, j) for j in range(_count(m, kind))]
            close = difflib.get_close_matches(name, [h for h in have if h], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{kind} '{name}' is not in model '{config.model_path}'{hint}")
        return i

    actuators = [lookup("actuator", mujoco.mjtObj.mjOBJ_ACTUATOR, a) for a in config.actuators]
    joint_names = config.joints or config.actuators
    if len(joint_names) != len(actuators):
        raise ConfigError(f"{len(joint_names)} joints configured for {len(actuators)} actuators")
    joints = [lookup("joint", mujoco.mjtObj.mjOBJ_JOINT, j) for j in joint_names]
    for a, j, name in zip(actuators, joints, joint_names, strict=True):
        if m.actuator_trnid[a, 0] != j:
            actuator = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
            raise ConfigError(f"actuator '{actuator}' does not drive joint '{name}'")
    root = lookup("body", mujoco.mjtObj.mjOBJ_BODY, config.root_body)
    free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    if not free or m.jnt_bodyid[free[0]] != root or m.jnt_qposadr[free[0]] != 0:
        raise ConfigError(
            f"root body '{config.root_body}' must carry the model's first, free joint"
        )
    lookup("keyframe", mujoco.mjtObj.mjOBJ_KEY, config.home_keyframe)
    imu = lookup("site", mujoco.mjtObj.mjOBJ_SITE, config.imu_site)
    feet = [lookup("site", mujoco.mjtObj.mjOBJ_SITE, s) for s in config.feet_sites]
    soles = [lookup("geom", mujoco.mjtObj.mjOBJ_GEOM, g) for g in config.sole_geoms]
    if not feet or len(soles) % len(feet):
        raise ConfigError(f"{len(soles)} sole geoms do not split evenly over {len(feet)} feet")
    colliding = np.nonzero(m.geom_contype | m.geom_conaffinity)[0]
    return ModelIds(
        actuators=np.array(actuators),
        joints=np.array(joints),
        qpos=m.jnt_qposadr[joints],
        qvel=m.jnt_dofadr[joints],
        dofs=m.jnt_dofadr[joints],
        root=root,
        torso=lookup("body", mujoco.mjtObj.mjOBJ_BODY, config.torso_body),
        imu=imu,
        imu_body=int(m.site_bodyid[imu]),
        feet=np.array(feet),
        soles=np.array(soles),
        friction_geoms=colliding,
    )


def _sole_thickness(m: mujoco.MjModel, soles: np.ndarray, config: EnvConfig) -> np.ndarray:
    """Height of each sole geom's lowest point below its centre when the foot is flat."""
    g = mujoco.mjtGeom
    kinds = {int(g.mjGEOM_SPHERE): 0, int(g.mjGEOM_CAPSULE): 0, int(g.mjGEOM_BOX): 2}
    out = []
    for g in soles:
        if int(m.geom_type[g]) not in kinds:
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g)
            raise ConfigError(f"sole geom '{name}' in '{config.model_path}' must be a sphere, "
                              "capsule or box")  # fmt: skip
        out.append(m.geom_size[g, kinds[int(m.geom_type[g])]])
    return np.array(out)


def _count(m: mujoco.MjModel, kind: str) -> int:
    return {"actuator": m.nu, "joint": m.njnt, "body": m.nbody, "site": m.nsite, "geom": m.ngeom,
            "keyframe": m.nkey}[kind]  # fmt: skip


def _fields(dc: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(dc)]


# ---------------------------------------------------------------------------------------------
# Demo: reset, step with random actions, print throughput
# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="control steps per timed call")
    args = parser.parse_args()

    env = WildRobotEnv()
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
