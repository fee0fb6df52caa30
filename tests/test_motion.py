"""Tests of motion.py (clip format, loader, features) and gait.py (generated clips, their checks).

Plain MuJoCo and NumPy, except the features: one jitted, vmapped env.amp_features per module.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re

import jax
import mujoco
import numpy as np
import pytest

import gait
import motion
from config import ConfigError
from env import EnvConfig, WildRobotEnv
from robot import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data")
CONFIG = EnvConfig()
JOINTS = CONFIG.actuators  # WildRobot's joints carry its servos' names
RATE = 1 / CONFIG.ctrl_dt


@pytest.fixture(scope="module")
def model():
    return load_model(CONFIG)


@pytest.fixture(scope="module")
def robot_env():
    """The env, and env.amp_features jitted over a batch (compiled once for the module)."""
    env = WildRobotEnv(CONFIG)
    return env, motion.make_featurize(env)


def quat_about(axis, angle):
    """Unit quaternions (..., 4) of rotations by `angle` (...) about a fixed axis."""
    angle = np.asarray(angle, float)[..., None]
    return np.concatenate([np.cos(angle / 2), np.sin(angle / 2) * np.asarray(axis, float)], -1)


def clip(num_frames=31, rate=30.0, names=JOINTS, **override):
    """A valid clip dict at `rate` fps: linear root motion, level root, joints moving linearly."""
    t = np.arange(num_frames) / rate
    arrays = {
        "fps": np.float64(rate),
        "joint_names": np.array(names),
        "root_pos": np.array([0.1, -0.2, 0.45]) + np.outer(t, [0.3, -0.1, 0.02]),
        "root_quat": np.tile([1.0, 0.0, 0.0, 0.0], (num_frames, 1)),
        "joint_pos": np.outer(t, 0.1 * np.arange(1, len(names) + 1)) - 0.2,
    }
    arrays.update(override)
    return {k: v for k, v in arrays.items() if v is not None}


def write(tmp_path, name="clip.npz", **arrays):
    path = os.path.join(tmp_path, name)
    np.savez(path, **arrays)
    return path


# ---------------------------------------------------------------------------------------------
# Resampling, slerp, finite differences
# ---------------------------------------------------------------------------------------------


def test_resampling_30_to_50_hz_is_exact_for_constant_rates(tmp_path, model):
    """A tilted body yawing at a constant rate, moving linearly, 30 fps -> 50 Hz: exact states."""
    fps, yaw_rate, tilt = 30.0, 9.0, 0.3  # 0.3 rad of yaw per source frame: nlerp would miss
    t = np.arange(31) / fps
    quat = motion.quat_mul(quat_about([0, 0, 1], yaw_rate * t), quat_about([1, 0, 0], tilt))
    quat[1::2] *= -1  # the same rotations; only the shorter arc between frames is right
    m = motion.load_motion(write(tmp_path, **clip(rate=fps, root_quat=quat)), CONFIG)

    times = np.arange(51) / RATE
    assert m.qpos.shape == (51, 16) and m.fps == RATE
    want = motion.quat_mul(quat_about([0, 0, 1], yaw_rate * times), quat_about([1, 0, 0], tilt))
    got = m.qpos[:, 3:7] * np.sign(np.sum(m.qpos[:, 3:7] * want, axis=1, keepdims=True))
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(
        m.qpos[:, :3], [0.1, -0.2, 0.45] + np.outer(times, [0.3, -0.1, 0.02]), atol=1e-6
    )
    np.testing.assert_allclose(m.qvel[:, :3], np.tile([0.3, -0.1, 0.02], (51, 1)), atol=1e-5)
    # Body frame (MuJoCo's free joint): the world z axis seen from the tilted body.
    body_rate = yaw_rate * np.array([0.0, np.sin(tilt), np.cos(tilt)])
    np.testing.assert_allclose(m.qvel[:, 3:6], np.tile(body_rate, (51, 1)), atol=1e-5)
    dofs = [model.jnt_dofadr[model.joint(j).id] for j in JOINTS]
    np.testing.assert_allclose(m.qvel[:, dofs], np.tile(0.1 * np.arange(1, 10), (51, 1)), atol=1e-5)


def test_finite_differences_central_inside_one_sided_at_the_ends(tmp_path):
    """Joints along a t^2 at the control rate: central differences are exact inside, ends lag."""
    t = np.arange(11) / RATE
    joint_pos = np.outer(t**2, np.ones(9))
    m = motion.load_motion(write(tmp_path, **clip(11, RATE, joint_pos=joint_pos)), CONFIG)
    qvel = m.qvel[:, 6:].astype(np.float64)
    np.testing.assert_allclose(qvel[1:-1], np.outer(2 * t[1:-1], np.ones(9)), atol=1e-5)
    dt = 1 / RATE
    np.testing.assert_allclose(qvel[0], dt, atol=1e-5)  # (dt^2 - 0) / dt
    np.testing.assert_allclose(qvel[-1], (t[-1] ** 2 - t[-2] ** 2) / dt, atol=1e-5)


def test_velocities_in_the_file_are_used(tmp_path):
    n = 11
    given = {"root_lin_vel": np.full((n, 3), 0.5), "root_ang_vel": np.full((n, 3), -0.25),
             "joint_vel": np.full((n, 9), 2.0)}  # fmt: skip
    m = motion.load_motion(write(tmp_path, **clip(n, RATE, **given)), CONFIG)
    np.testing.assert_allclose(m.qvel[:, :3], 0.5)
    np.testing.assert_allclose(m.qvel[:, 3:6], -0.25)
    np.testing.assert_allclose(m.qvel[:, 6:], 2.0)


# ---------------------------------------------------------------------------------------------
# Joint mapping and loader errors
# ---------------------------------------------------------------------------------------------


def test_joints_map_by_name_in_any_order_extra_ones_ignored(tmp_path, model):
    base = clip(rate=RATE)
    order = np.random.default_rng(0).permutation(len(JOINTS))
    names = [JOINTS[i] for i in order] + ["left_elbow"]
    joint_pos = np.concatenate([base["joint_pos"][:, order], np.ones((31, 1))], axis=1)
    shuffled = clip(rate=RATE, names=names, joint_pos=joint_pos)
    a = motion.load_motion(write(tmp_path, "a.npz", **base), CONFIG)
    b = motion.load_motion(write(tmp_path, "b.npz", **shuffled), CONFIG)
    np.testing.assert_array_equal(a.qpos, b.qpos)
    np.testing.assert_array_equal(a.qvel, b.qvel)
    assert b.ignored_joints == ("left_elbow",)
    knee = model.jnt_qposadr[model.joint("left_knee_pitch").id]
    np.testing.assert_allclose(
        b.qpos[:, knee], base["joint_pos"][:, JOINTS.index("left_knee_pitch")], atol=1e-6
    )


BAD = {
    "missing key": (dict(root_quat=None), r"lacks \['root_quat'\]"),
    "missing joint": (dict(names=JOINTS[:-1], joint_pos=np.zeros((31, 8))),
                      r"lacks configured joints \['waist_yaw'\]"),
    "repeated joint": (dict(names=JOINTS[:-1] + JOINTS[:1]), r"joint_names repeats"),
    "nan": (dict(joint_pos=np.full((31, 9), np.nan)), r"joint_pos has a NaN or inf at frame 0"),
    "inf": (dict(root_lin_vel=np.full((31, 3), np.inf)), r"root_lin_vel has a NaN or inf"),
    "zero fps": (dict(fps=np.float64(0.0)), r"fps must be one positive number"),
    "negative fps": (dict(fps=np.float64(-30.0)), r"fps must be one positive number"),
    "nan fps": (dict(fps=np.float64(np.nan)), r"fps must be one positive number"),
    "one frame": (dict(root_pos=np.zeros((1, 3)), root_quat=np.array([[1.0, 0, 0, 0]]),
                       joint_pos=np.zeros((1, 9))), r"has 1 frame\(s\); a clip needs at least 2"),
    "too short": (dict(fps=np.float64(1000.0), root_pos=np.zeros((2, 3)),
                       root_quat=np.tile([1.0, 0, 0, 0], (2, 1)), joint_pos=np.zeros((2, 9))),
                  r"under 2 frames at the control rate"),
    "root_pos shape": (dict(root_pos=np.zeros((31, 2))), r"root_pos has shape \(31, 2\)"),
    "joint_pos shape": (dict(joint_pos=np.zeros((31, 10))), r"joint_pos has shape \(31, 10\)"),
    "quat shape": (dict(root_quat=np.zeros((30, 4))), r"root_quat has shape \(30, 4\)"),
    "velocity shape": (dict(joint_vel=np.zeros((31, 8))), r"joint_vel has shape"),
    "zero quat": (dict(root_quat=np.zeros((31, 4))), r"root_quat is zero at frame 0"),
    "non-unit quat": (dict(root_quat=np.tile([1.0, 0.1, 0, 0], (31, 1))), r"norm 1.004988"),
    "object array": (dict(root_pos=np.array([None] * 31, dtype=object)), r"pickled"),
    "names not strings": (dict(names=np.arange(9)), r"joint_names must be a 1-D array of strings"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_files_are_named_errors(tmp_path, case):
    change, message = BAD[case]
    names = change.pop("names", JOINTS)
    path = write(tmp_path, **clip(names=names, **change))
    with pytest.raises(ConfigError, match=rf"motion file '{re.escape(path)}'.*{message}"):
        motion.load_motion(path, CONFIG)


def test_pickles_and_other_files_are_refused_without_running_them(tmp_path):
    path = os.path.join(tmp_path, "evil.npz")
    with open(path, "wb") as f:
        pickle.dump({"fps": 30.0}, f)  # unpickling it would be executing the file's code
    with pytest.raises(ConfigError, match=r"evil.npz'.*pickled"):
        motion.load_motion(path, CONFIG)
    np.save(os.path.join(tmp_path, "one.npy"), np.zeros(3))
    with pytest.raises(ConfigError, match=r"one.npy'.*single .npy array"):
        motion.load_motion(os.path.join(tmp_path, "one.npy"), CONFIG)
    with pytest.raises(ConfigError, match=r"nothing.npz': not found"):
        motion.load_motion(os.path.join(tmp_path, "nothing.npz"), CONFIG)
    with open(os.path.join(tmp_path, "text.npz"), "w") as f:
        f.write("fps = 30\n")
    with pytest.raises(ConfigError, match=r"text.npz'"):
        motion.load_motion(os.path.join(tmp_path, "text.npz"), CONFIG)


# ---------------------------------------------------------------------------------------------
# Generated clips and their checks
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def walk(model):
    """A fresh 2 s kinematic clip at 0.4 m/s."""
    return gait.kinematic_clip(model, CONFIG, gait.GaitConfig(seconds=2.0), 0.4)


def test_kinematic_clip_passes_its_checks_and_follows_the_env_clock(model, walk):
    qpos, qvel = walk
    assert gait.check_clip(model, CONFIG, qpos, gait.KINEMATIC) == []
    data, robot = mujoco.MjData(model), gait.robot_ids(model, CONFIG)
    phase = 2 * np.pi * CONFIG.gait_frequency * CONFIG.ctrl_dt * np.arange(len(qpos))
    for i in range(len(qpos)):
        data.qpos[:] = qpos[i]
        mujoco.mj_kinematics(model, data)
        bottoms = [min(gait.lowest_point(model, data, g)[2] for g in s) for s in robot.soles]
        # feet_phase: the left foot swings in the first half of the cycle, the right in the second.
        want = CONFIG.swing_height * np.maximum(np.sin(phase[i] + [0.0, np.pi]), 0.0)
        np.testing.assert_allclose(bottoms, want, atol=1e-6)
        # The env measures the foot site, above the lowest point of a foot rolled on its edge.
        np.testing.assert_allclose(data.site_xpos[robot.feet, 2], want, atol=4e-3)
    np.testing.assert_allclose(qvel[:, 0].mean(), 0.4, atol=0.01)


def test_lowest_sole_point_is_mujocos_distance_to_the_floor(model, walk):
    """gait.lowest_point against mj_geomDistance (sole to floor) on tilted and walking poses."""
    data, robot = mujoco.MjData(model), gait.robot_ids(model, CONFIG)
    floor = model.geom("floor").id
    poses = walk[0][::25].copy()
    poses[1, 3:7] = quat_about(np.array([1.0, 0.5, 0.0]) / np.sqrt(1.25), 0.3)  # tilted root
    for q in poses:
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        for g in np.concatenate(robot.soles):
            distance = mujoco.mj_geomDistance(model, data, g, floor, 1.0, None)
            assert abs(gait.lowest_point(model, data, g)[2] - distance) < 1e-9


def test_checks_refuse_a_foot_in_the_floor_a_joint_out_of_range_a_sliding_foot(model, walk):
    qpos = walk[0].copy()
    sunk = qpos.copy()
    sunk[40, 2] -= 0.005
    assert any(
        "5.0 mm below the floor at frame 40" in p for p in gait.check_clip(model, CONFIG, sunk)
    )
    twisted = qpos.copy()
    twisted[30, model.jnt_qposadr[model.joint("waist_yaw").id]] = 0.6
    problems = gait.check_clip(model, CONFIG, twisted)
    assert problems == ["joint waist_yaw is 0.6000 rad at frame 30, outside [-0.5236, 0.5236]"]
    slid = qpos.copy()
    slid[50:, 0] += 0.003  # both feet jump 3 mm forward
    assert any("slid 3.0 mm" in p for p in gait.check_clip(model, CONFIG, slid))


def test_committed_clips_pass_their_checks(model):
    kinematic = motion.load_motion(os.path.join(DATA, "kinematic"), CONFIG)
    replayed = motion.load_motion(DATA, CONFIG)
    assert len(replayed.clip_names) == len(kinematic.clip_names) == len(gait.GaitConfig().speeds)
    for clips, tol in ((kinematic, gait.KINEMATIC), (replayed, gait.REPLAYED)):
        for n in range(len(clips.clip_names)):
            qpos = clips.qpos[clips.clip == n].astype(np.float64)
            assert len(qpos) == 201
            # float32 storage: 1e-7 rad of a joint at its limit
            tol_f32 = dataclasses.replace(tol, joint_range=tol.joint_range + 1e-6)
            assert gait.check_clip(model, CONFIG, qpos, tol_f32) == [], clips.clip_names[n]


# ---------------------------------------------------------------------------------------------
# Features and transitions
# ---------------------------------------------------------------------------------------------


def test_features_are_env_amp_features_of_each_frame(robot_env):
    env, featurize = robot_env
    m = motion.load_motion(
        [os.path.join(DATA, "walk_0.30.npz"), os.path.join(DATA, "walk_0.00.npz")], CONFIG
    )
    features = motion.motion_features(env, m, featurize)
    assert features.shape == (m.num_frames, env.amp_feature_size)
    one = jax.jit(env.amp_features)
    for i in (0, 77, 200, 201, m.num_frames - 1):
        np.testing.assert_allclose(features[i], one(m.qpos[i], m.qvel[i]), atol=1e-5)
    # The pieces come from the file by name: joints, joint velocities, root height.
    raw = np.load(os.path.join(DATA, "walk_0.30.npz"))
    order = [list(raw["joint_names"]).index(j) for j in JOINTS]
    np.testing.assert_allclose(features[:201, :9], raw["joint_pos"][:, order], atol=1e-6)
    np.testing.assert_allclose(features[:201, 9:18], raw["joint_vel"][:, order], atol=1e-5)
    np.testing.assert_allclose(features[:201, 24], raw["root_pos"][:, 2], atol=1e-6)

    starts, ends = motion.transitions(m, features)
    assert len(starts) == m.num_frames - 2  # one pair per clip fewer than frames - 1
    index = motion.transition_index(m)
    assert 200 not in index  # the last frame of clip 0 -> the first of clip 1
    np.testing.assert_array_equal(starts, features[index])
    np.testing.assert_array_equal(ends, features[index + 1])


def test_the_gait_clock_of_a_clip_comes_along(tmp_path):
    """A clip's optional `phase` is resampled as a clock (no jump at the 2 pi wrap); a folder
    where one clip lacks it gives no phases at all."""
    config = EnvConfig()
    times = np.arange(31) / 30.0
    phase = np.mod(2 * np.pi * 1.5 * times + 6.0, 2 * np.pi)  # wraps once
    joints = list(config.actuators)
    arrays = dict(
        root_pos=np.tile([0.0, 0.0, 0.46], (31, 1)),
        root_quat=np.tile([1.0, 0.0, 0.0, 0.0], (31, 1)),
        joint_pos=np.zeros((31, len(joints))),
    )
    np.savez(tmp_path / "a.npz", fps=30.0, joint_names=joints, phase=phase, **arrays)
    clip = motion.load_motion(str(tmp_path / "a.npz"), config)
    t = np.arange(clip.num_frames) * config.ctrl_dt
    want = np.mod(2 * np.pi * 1.5 * t + 6.0, 2 * np.pi)
    err = np.angle(np.exp(1j * (clip.phase - want)))
    np.testing.assert_allclose(err, 0.0, atol=1e-5)
    np.savez(tmp_path / "b.npz", fps=30.0, joint_names=joints, **arrays)
    assert motion.load_motion(str(tmp_path), config).phase is None
