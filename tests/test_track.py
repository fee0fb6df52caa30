"""Tests of track.py: the pose table against hand values, the tracking wrapper's residual actions
and reward on a stand-in env, and `python track.py` / `track.py record` end to end on WildRobot."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import motion
import track
from config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table() -> track.PoseTable:
    """Two speeds, 4 phase bins (centres at pi/4, 3pi/4, ...), one joint."""
    joints = np.array([[0.0, 1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0]])[:, :, None]
    return track.PoseTable(jnp.array([0.0, 0.5]), jnp.asarray(joints, jnp.float32))


def test_pose_table_is_linear_in_phase_between_bin_centres_and_in_speed():
    table = _table()
    centre = lambda b: 2 * np.pi * (b + 0.5) / 4  # noqa: E731
    assert float(table(0.0, centre(1))[0]) == pytest.approx(1.0)
    assert float(table(0.0, (centre(1) + centre(2)) / 2)[0]) == pytest.approx(1.5)
    # Periodic: halfway between the last centre and the first (phase 0) is between 3 and 0.
    assert float(table(0.0, 0.0)[0]) == pytest.approx(1.5)
    assert float(table(0.0, 2 * np.pi + centre(0))[0]) == pytest.approx(0.0, abs=1e-5)
    assert float(table(0.25, centre(2))[0]) == pytest.approx(7.0)  # halfway between 2 and 12
    assert float(table(0.9, centre(2))[0]) == pytest.approx(12.0)  # clamped to the fastest
    assert float(table(-0.3, centre(2))[0]) == pytest.approx(2.0)


def _clips(phase, clip, qpos) -> motion.Motion:
    return motion.Motion(
        qpos=np.asarray(qpos, np.float32),
        qvel=np.zeros_like(qpos, np.float32),
        clip=np.asarray(clip, np.int32),
        phase=None if phase is None else np.asarray(phase, np.float32),
        fps=50.0,
        clip_names=("fast.npz", "slow.npz"),
        joint_names=("j",),
        ignored_joints=(),
    )


def test_pose_table_averages_each_bin_and_names_what_it_cannot_build():
    phase = np.array([0.1, 0.2, 4.0, 0.1, 4.0, 4.1])  # bins of 2: [0, pi), [pi, 2 pi)
    clip = np.array([1, 1, 1, 0, 0, 0])  # fast.npz (0.4 m/s) is the first file
    qpos = np.array([[1.0], [3.0], [5.0], [7.0], [9.0], [11.0]])
    table = track.pose_table(_clips(phase, clip, qpos), np.array([0.4, 0.1]), np.array([0]), 2)
    np.testing.assert_allclose(table.speeds, [0.1, 0.4])  # sorted by speed
    np.testing.assert_allclose(table.joints[:, :, 0], [[2.0, 5.0], [7.0, 10.0]])
    with pytest.raises(ConfigError, match="phase"):
        track.pose_table(_clips(None, clip, qpos), np.array([0.4, 0.1]), np.array([0]), 2)
    with pytest.raises(ConfigError, match="2 distinct speeds"):
        track.pose_table(_clips(phase, clip, qpos), np.array([0.4, 0.4]), np.array([0]), 2)
    with pytest.raises(ConfigError, match="slow.npz' has no frame in phase bin 1 of 8"):
        track.pose_table(_clips(phase, clip, qpos), np.array([0.4, 0.1]), np.array([0]), 8)


@struct.dataclass
class _State:
    qpos: jnp.ndarray
    phase: jnp.ndarray
    command: jnp.ndarray
    reward: jnp.ndarray
    rewards: dict
    terminated: jnp.ndarray

    @property
    def data(self):
        return SimpleNamespace(qpos=self.qpos)

    @property
    def info(self):
        return SimpleNamespace(phase=self.phase, command=self.command)


class _ServoEnv:
    """A stand-in for WildRobotEnv: a free root (qpos 0-6) that stays put, and one joint (qpos 7)
    that goes exactly where the action sends it."""

    config = SimpleNamespace(gait_frequency=1.5, ctrl_dt=0.02, action_scale=0.5)
    home_joints = jnp.array([0.2])
    ids = SimpleNamespace(qpos=jnp.array([7]))

    def step(self, state: _State, action):
        q = self.home_joints + self.config.action_scale * action
        phase = state.phase + 2 * np.pi * 1.5 * 0.02
        return state.replace(qpos=state.qpos.at[7:].set(q), phase=phase, reward=jnp.ones(()),
                             rewards={"task": 1.0})  # fmt: skip


def _qpos(joint: float, yaw: float = 0.0) -> jnp.ndarray:
    """Root at the origin turned `yaw` about z, then the joint."""
    return jnp.array([0, 0, 0.3, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2), joint])


def test_tracking_wrapper_feeds_the_clip_pose_forward_and_pays_for_matching_it():
    settings = track.TrackSettings(pose_weight=2.0, pose_sigma=0.25)
    env = track.GaitTracking(_ServoEnv(), _table(), settings)
    step_phase = 2 * np.pi * 1.5 * 0.02
    state = _State(_qpos(0.2), jnp.array(np.pi / 4 - step_phase), jnp.array([0.0, 0, 0]),
                   jnp.zeros(()), {}, jnp.zeros((), bool))  # fmt: skip
    after = env.step(state, jnp.zeros(1))  # a zero action lands on the clip's next pose
    np.testing.assert_allclose(after.qpos[7:], [0.0], atol=1e-5)  # table at bin 0's centre
    assert float(after.rewards["imitation"]) == pytest.approx(2.0 * 0.02)
    assert float(after.reward) == pytest.approx(1.0 + 2.0 * 0.02)
    off = env.step(state, jnp.array([1.0]))  # 0.5 rad off the clip
    assert float(off.rewards["imitation"]) == pytest.approx(2.0 * 0.02 * np.exp(-0.25 / 0.25))
    fell = env.step(state.replace(terminated=jnp.ones((), bool)), jnp.zeros(1))
    assert float(fell.rewards["imitation"]) == 0.0  # a fall earns no pose reward
    plain = track.GaitTracking(_ServoEnv(), _table(), track.TrackSettings(feedforward=False))
    np.testing.assert_allclose(plain.step(state, jnp.zeros(1)).qpos[7:], [0.2])  # the env's own
    assert float(after.rewards["heading"]) == 0.0  # heading_weight defaults to 0


def test_tracking_wrapper_pays_for_holding_the_heading():
    settings = track.TrackSettings(pose_weight=0.0, heading_weight=1.5, heading_sigma=0.1)
    env = track.GaitTracking(_ServoEnv(), _table(), settings)
    for yaw in (0.0, 0.3, -0.3, 3.0):
        state = _State(_qpos(0.2, yaw), jnp.zeros(()), jnp.array([0.0, 0, 0]), jnp.zeros(()), {},
                       jnp.zeros((), bool))  # fmt: skip
        after = env.step(state, jnp.zeros(1))
        expected = 1.5 * 0.02 * np.exp(-(yaw**2) / 0.1)
        assert float(after.rewards["heading"]) == pytest.approx(expected, rel=1e-4, abs=1e-9)
        assert float(after.reward) == pytest.approx(1.0 + expected, rel=1e-4)
        fell = env.step(state.replace(terminated=jnp.ones((), bool)), jnp.zeros(1))
        assert float(fell.rewards["heading"]) == 0.0
    quats = np.array([[np.cos(a / 2), 0, 0, np.sin(a / 2)] for a in (0.5, -2.0, 3.1)])
    np.testing.assert_allclose(track.root_yaw(quats), [0.5, -2.0, 3.1], atol=1e-6)
    tilted = np.array([np.cos(0.2), np.sin(0.2), 0, 0])  # rolled 0.4 rad, not turned
    assert float(track.root_yaw(tilted)) == pytest.approx(0.0, abs=1e-7)


def test_a_heading_term_refuses_clips_that_turn():
    """The tracked clips turn; a term paying for yaw 0 would fight them, so prepare says so."""
    config = track.load_config(
        track.DEFAULT_CONFIG, ["track.clips=data/tracked", "track.heading_weight=1"]
    )
    with pytest.raises(ConfigError, match="heading_weight.*turn up to"):
        track.prepare(config)


def test_a_tracked_clip_is_labelled_with_the_speed_it_walked():
    assert track.tracked_clip_name(0.4, 0.2881) == (0.29, "walk_0.29_from_0.40.npz")
    assert track.tracked_clip_name(0.0, -0.003) == (0.0, "walk_0.00_from_0.00.npz")  # no -0.00
    # and back: the speed a clip was recorded from, from its name (reference_gap.py asks the
    # recording policy for it)
    assert track.tracked_clip_source("data/tracked/walk_0.29_from_0.40.npz") == 0.4
    assert track.tracked_clip_source(track.tracked_clip_name(0.3, 0.31)[1]) == 0.3
    assert track.tracked_clip_source("data/kinematic/walk_0.40.npz") is None


def test_cli_smoke_run_and_record(tmp_path):
    """`python track.py` on the tiny config trains with the imitation term; `record` runs its
    policy at every clip speed and writes only clips that pass the tracked-clip checks."""
    run_dir = tmp_path / "track"
    cmd = [sys.executable, "track.py", "--config", "configs/smoke.toml", "--run-dir",
           str(run_dir)]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "reward/imitation" in out.stdout and "reward/heading" in out.stdout
    assert track.is_tracker(str(run_dir / "policy.msgpack"))
    assert not track.is_tracker(os.path.join(ROOT, "policies", "wildrobot_walk.msgpack"))
    assert not track.is_tracker(str(tmp_path / "missing.msgpack"))
    clips = tmp_path / "clips"
    cmd = [sys.executable, "track.py", "record", str(run_dir / "policy.msgpack"), "--out",
           str(clips), "--settle", "0.2", "--seconds", "1.0"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    lines = out.stdout.splitlines()
    assert len(lines) == 6 and lines[0].startswith("0.00 m/s"), out.stdout + out.stderr[-2000:]
    written = sorted(os.listdir(clips))
    assert out.returncode == (0 if len(written) == 6 else 1)
    # standing still passes; an untrained walker does not
    assert any(name.endswith("_from_0.00.npz") for name in written), written
    assert len(written) < 6
    for name in written:  # each clip is labelled with the speed it walked, as printed
        source = name.split("_from_")[1][: -len(".npz")]
        line = next(x for x in lines if x.startswith(f"{source} m/s clip: walked "))
        walked = float(line.split("walked ")[1].split(" m/s")[0])
        assert float(np.load(clips / name)["speed"]) == pytest.approx(walked, abs=0.0051)
    loaded = motion.load_motion(str(clips), track.load_config(track.DEFAULT_CONFIG).env)
    assert loaded.phase is not None and loaded.num_frames == 51 * len(written)
