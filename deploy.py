"""Run a trained policy with NumPy alone: the code a robot's onboard computer needs.

A policy file (`.npz`, written by `export.py`) holds the actor's weights, the observation
normalizer and everything the control loop needs (home pose, action scale, joint ranges, timing,
observation layout). Sensor readings go in, servo position targets come out:

    from deploy import Controller
    ctrl = Controller.load("policies/wildrobot_walk.npz")
    ctrl.reset()
    targets = ctrl.step(imu_quat, gyro, joint_pos, joint_vel, command=(0.3, 0.0, 0.0))

The joystick's yaw can also steer a heading the robot keeps (HeadingHold): the policy still gets a
yaw-rate command, made from the heading error, so the robot holds its line instead of drifting:

    hold = HeadingHold(ctrl_dt=0.02, yaw_joints=[8])  # waist_yaw turns the IMU against the legs
    hold.reset(imu_quat, joint_pos)
    command = hold(imu_quat, joint_pos, (0.3, 0.0, 0.0))  # then ctrl.step(..., command=command)

Only NumPy is imported, so this file can be copied to the robot on its own.
"""

from __future__ import annotations

import numpy as np

# The NumPy twins of ppo.ACTIVATIONS, same names (a test keeps the two tables in step).
ACTIVATIONS = {
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "relu": lambda x: np.maximum(x, 0),
    "tanh": np.tanh,
    "silu": lambda x: x / (1 + np.exp(-x)),
}


class NumpyPolicy:
    """Deterministic actor: normalize (clip at `clip`), MLP, mean action clipped to [-1, 1]."""

    def __init__(self, weights, mean, std, activation: str, clip: float = 10.0):
        self.weights = [(np.asarray(k, np.float32), np.asarray(b, np.float32)) for k, b in weights]
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.activation = ACTIVATIONS[activation]
        self.clip = clip

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.clip((np.asarray(obs, np.float32) - self.mean) / self.std, -self.clip, self.clip)
        for i, (kernel, bias) in enumerate(self.weights):
            x = x @ kernel + bias
            if i < len(self.weights) - 1:
                x = self.activation(x)
        return np.clip(x, -1.0, 1.0)


def gravity_in_sensor_frame(quat_wxyz: np.ndarray) -> np.ndarray:
    """Unit gravity direction in the IMU frame from the IMU orientation quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(quat_wxyz, np.float64) / np.linalg.norm(quat_wxyz)
    # Third row of the rotation matrix (sensor -> world), negated: R^T @ (0, 0, -1).
    return -np.array([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)])


def yaw_of(quat_wxyz) -> float:
    """Heading (rad): the yaw of the frame's x axis about the vertical, from (w, x, y, z)."""
    w, x, y, z = np.asarray(quat_wxyz, np.float64) / np.linalg.norm(quat_wxyz)
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def heading_hold_rate(target, heading, yaw_rate, dt, gain, max_rate, max_lead):
    """One step of heading hold: (new heading target, yaw-rate command); NumPy or JAX arrays.

    The target turns at the joystick's `yaw_rate`, but never leads the heading by more than
    `max_lead` rad (no wind-up when the robot turns slower than asked); the command is that rate
    plus `gain` times the heading error, within +-`max_rate`. Angles wrap to [-pi, pi).
    """
    error = (target + yaw_rate * dt - heading + np.pi) % (2 * np.pi) - np.pi
    error = error.clip(-max_lead, max_lead)
    return heading + error, (yaw_rate + gain * error).clip(-max_rate, max_rate)


HOLD_MAX_RATE = 1.0  # rad/s: HeadingHold's largest yaw-rate command (the training range's)


class HeadingHold:
    """Turn the joystick's yaw rate into a heading the robot keeps, for a yaw-rate policy.

    The heading is the IMU's yaw minus the angles of `yaw_joints` (joints about the vertical
    between the legs and the IMU, e.g. a waist), so it is the legs' heading, not the chest's.
    """

    def __init__(self, ctrl_dt: float, gain: float = 2.0, max_rate: float = HOLD_MAX_RATE,
                 max_lead: float = 0.5, yaw_joints=()):  # fmt: skip
        self.dt, self.gain, self.max_rate, self.max_lead = ctrl_dt, gain, max_rate, max_lead
        self.yaw_joints = list(yaw_joints)
        self.target = 0.0

    def heading(self, imu_quat, joint_pos) -> float:
        return yaw_of(imu_quat) - float(np.sum(np.asarray(joint_pos)[self.yaw_joints]))

    def reset(self, imu_quat, joint_pos) -> None:
        """Keep the heading the robot has now."""
        self.target = self.heading(imu_quat, joint_pos)

    def __call__(self, imu_quat, joint_pos, command) -> np.ndarray:
        """The command for Controller.step: forward and lateral as given, yaw rate from heading."""
        command = np.asarray(command, np.float64)
        target, rate = heading_hold_rate(
            np.float64(self.target), self.heading(imu_quat, joint_pos), command[2], self.dt,
            self.gain, self.max_rate, self.max_lead,
        )  # fmt: skip
        self.target = float(target)
        return np.array([command[0], command[1], rate])


class Controller:
    """The control loop around a NumpyPolicy: observation, gait clock, action filter, targets.

    It adds no latency of its own: the robot's servo bus has it (about one control step), and a
    simulator standing in for the robot adds it (sim2sim.MujocoRobot).
    """

    def __init__(self, policy: NumpyPolicy, meta: dict):
        self.policy = policy
        names, sizes = meta["obs_names"], meta["obs_sizes"]
        self.layout = [(str(n), int(s)) for n, s in zip(names, sizes, strict=True)]
        self.home = np.asarray(meta["home"], np.float32)
        self.lo = np.asarray(meta["joint_lo"], np.float32)
        self.hi = np.asarray(meta["joint_hi"], np.float32)
        self.action_scale = float(meta["action_scale"])
        self.alpha = float(meta["action_filter_alpha"])
        self.phase_step = 2 * np.pi * float(meta["gait_frequency"]) * float(meta["ctrl_dt"])
        self.reset()

    @classmethod
    def load(cls, path: str) -> Controller:
        f = np.load(path)
        n = int(f["num_layers"])
        weights = [(f[f"kernel_{i}"], f[f"bias_{i}"]) for i in range(n)]
        policy = NumpyPolicy(weights, f["obs_mean"], f["obs_std"], str(f["activation"]))
        return cls(policy, {k: f[k] for k in f.files})

    def reset(self, phase: float = 0.0) -> None:
        n = len(self.home)
        self.phase = phase
        self.last_action = np.zeros(n, np.float32)
        self.filtered = np.zeros(n, np.float32)

    def observation(self, imu_quat, gyro, joint_pos, joint_vel, command) -> np.ndarray:
        """The actor observation from raw sensor readings, in the policy's layout."""
        pieces = {
            "gravity": gravity_in_sensor_frame(imu_quat),
            "gyro": gyro,
            "joint_pos": np.asarray(joint_pos) - self.home,
            "joint_vel": joint_vel,
            "last_action": self.last_action,
            "command": command,
            "phase": [np.cos(self.phase), np.sin(self.phase)],
        }
        obs = [np.asarray(pieces[name], np.float32).reshape(size) for name, size in self.layout]
        return np.concatenate(obs)

    def step(self, imu_quat, gyro, joint_pos, joint_vel, command) -> np.ndarray:
        """One control step: servo position targets (rad) for the actuators, in policy order."""
        obs = self.observation(imu_quat, gyro, joint_pos, joint_vel, np.asarray(command))
        action = self.policy(obs)
        self.filtered = self.alpha * action + (1 - self.alpha) * self.filtered
        self.last_action = action
        self.phase = (self.phase + self.phase_step) % (2 * np.pi)
        return np.clip(self.home + self.action_scale * self.filtered, self.lo, self.hi)
