"""Run a trained policy with NumPy alone: the code a robot's onboard computer needs.

A policy file (`.npz`, written by `export.py`) holds the actor's weights, the observation
normalizer and everything the control loop needs (home pose, action scale, joint ranges, timing,
observation layout). Sensor readings go in, servo position targets come out:

    from deploy import Controller
    ctrl = Controller.load("policies/wildrobot_walk.npz")
    ctrl.reset()
    targets = ctrl.step(imu_quat, gyro, joint_pos, joint_vel, command=(0.3, 0.0, 0.0))

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


class Controller:
    """The control loop around a NumpyPolicy: observation, gait clock, action filter, targets.

    It adds no latency of its own: the robot's servo bus has it (about one control step), and a
    simulator standing in for the robot adds it (play.MujocoRobot).
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
