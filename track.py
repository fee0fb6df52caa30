"""A gait the robot performs unaided: PPO tracks the kinematic clips, then its motion is recorded.

The kinematic clips (gait.py, data/kinematic) are not dynamically feasible: replayed by the
servos alone the robot falls within 2 s. This script trains a policy to follow them in the training
physics, without any help, and records what the robot then does as reference clips for AMP:

    python track.py                                          # train (ppo.py's CLI and run dirs)
    python track.py record runs/<run>/policy.msgpack --out data/tracked    # write the clips

Training is ppo.py's loop on WildRobot wrapped in GaitTracking: the servo targets are the clip's
joint angles at the env's gait clock and the commanded forward speed (linear between the clips'
speeds) plus the policy's action (a residual: the policy learns the corrections that keep the robot
up), and a reward pays for joint angles near the clip's, beside the walking config's task terms.
A share of episodes starts from a random frame of the clips (amp.ReferenceInit).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import amp
import driver
import ppo
import runs
from config import ConfigError, bounded, file_path, override

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs",
                              "wildrobot_track.toml")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TrackSettings:
    """What is tracked and how much it pays ([track] in a config file)."""

    clips: str = file_path("data/kinematic")  # clips with `speed` and `phase` (data/README.md)
    phase_bins: int = bounded(24, ge=4)  # of the gait clock, per clip speed
    pose_weight: float = bounded(2.0, ge=0)  # reward per second at the clip's joint angles
    pose_sigma: float = bounded(0.25, gt=0)  # rad^2: exp(-sum of squared joint errors / sigma)
    feedforward: bool = True  # servo targets = clip pose + action; False: the env's own mapping
    reference_init: float = bounded(0.5, ge=0, le=1)  # share of episodes starting on a clip
    # Heading: the root's yaw, which the clips and the home pose hold at 0 (prepare checks the
    # clips). Without hip yaw joints the swing leg turns the body; this term pays for holding it.
    heading_weight: float = bounded(0.0, ge=0)  # reward per second at yaw 0
    heading_sigma: float = bounded(0.1, gt=0)  # rad^2: exp(-yaw^2 / sigma)


@dataclasses.dataclass(frozen=True)
class TrackConfig(ppo.PPOConfig):
    """PPOConfig plus the [track] section."""

    name: str = "wildrobot_track"
    track: TrackSettings = TrackSettings()


def load_config(path: str | None = None, overrides: Any = ()) -> TrackConfig:
    return ppo.load_config(path, overrides, cls=TrackConfig)


# ---------------------------------------------------------------------------------------------
# The reference pose at any gait phase and speed
# ---------------------------------------------------------------------------------------------


class PoseTable(NamedTuple):
    """Mean joint angles of the clips per gait-clock bin, one row per clip speed."""

    speeds: jax.Array  # (S,) m/s, ascending
    joints: jax.Array  # (S, B, nu) rad, bin b centred on phase 2 pi (b + 0.5) / B

    def __call__(self, speed: jax.Array, phase: jax.Array) -> jax.Array:
        """(nu,) joint angles: linear in the phase between bin centres (periodic), and in the
        speed between clips (clamped to the clips' range)."""
        num_bins = self.joints.shape[1]
        x = jnp.mod(phase, 2 * jnp.pi) / (2 * jnp.pi) * num_bins - 0.5
        lo = jnp.floor(x).astype(jnp.int32)
        u = x - lo
        by_phase = (1 - u) * self.joints[:, lo % num_bins] + u * self.joints[:, (lo + 1) % num_bins]
        s = jnp.clip(speed, self.speeds[0], self.speeds[-1])
        i = jnp.clip(jnp.searchsorted(self.speeds, s) - 1, 0, len(self.speeds) - 2)
        w = (s - self.speeds[i]) / (self.speeds[i + 1] - self.speeds[i])
        return (1 - w) * by_phase[i] + w * by_phase[i + 1]


def pose_table(clips: Any, speeds: np.ndarray, qpos_index: np.ndarray, bins: int) -> PoseTable:
    """PoseTable from a motion.Motion whose clips carry a phase; `speeds` per clip."""
    if clips.phase is None:
        raise ConfigError(f"clips {clips.clip_names} need a `phase` key to be tracked")
    order = np.argsort(speeds)
    if len(order) < 2 or np.any(np.diff(speeds[order]) <= 0):
        raise ConfigError(f"tracking needs clips of at least 2 distinct speeds, got {speeds}")
    which = np.minimum((clips.phase / (2 * np.pi) * bins).astype(int), bins - 1)
    table = np.zeros((len(speeds), bins, len(qpos_index)), np.float32)
    for row, n in enumerate(order):
        frames = clips.clip == n
        for b in range(bins):
            here = frames & (which == b)
            if not here.any():
                raise ConfigError(f"clip '{clips.clip_names[n]}' has no frame in phase bin {b} "
                                  f"of {bins}: fewer phase_bins, or a longer clip")  # fmt: skip
            table[row, b] = clips.qpos[here][:, qpos_index].mean(0)
    return PoseTable(jnp.asarray(speeds[order], jnp.float32), jnp.asarray(table))


def clip_speeds(paths: tuple[str, ...]) -> np.ndarray:
    """The `speed` each clip file was made for (gait.py writes it)."""
    speeds = []
    for path in paths:
        with np.load(path, allow_pickle=False) as f:
            if "speed" not in f.files:
                raise ConfigError(f"motion file '{path}' has no `speed` key: which speed to track?")
            speeds.append(float(f["speed"]))
    return np.asarray(speeds)


# ---------------------------------------------------------------------------------------------
# The env wrapper
# ---------------------------------------------------------------------------------------------


class GaitTracking:
    """WildRobot (env.WildRobotEnv) following a PoseTable: residual actions and a pose reward.

    With `feedforward`, the action the env gets is the policy's plus the one that puts the
    servos on the reference pose of the phase the step ends at, so a zero action tracks the clip.
    The reward adds pose_weight * exp(-|q - q_ref|^2 / pose_sigma) per second (in
    `rewards["imitation"]`) and heading_weight * exp(-yaw^2 / heading_sigma) for the root's yaw
    (in `rewards["heading"]`); everything else is the wrapped env's.
    """

    def __init__(self, env: Any, table: PoseTable, settings: TrackSettings):
        self.env, self.table, self.settings = env, table, settings
        c = env.config
        self.phase_step = 2 * jnp.pi * c.gait_frequency * c.ctrl_dt

    def __getattr__(self, name: str) -> Any:  # sizes, ids, config, home_data, amp_features, ...
        return getattr(self.env, name)

    def reference(self, state: Any, ahead: int = 0) -> jax.Array:
        phase = state.info.phase + ahead * self.phase_step
        return self.table(state.info.command[0], phase)

    def _with_reward(self, state: Any, imitation: jax.Array, heading: jax.Array) -> Any:
        terms = {"imitation": imitation, "heading": heading}
        return state.replace(reward=state.reward + imitation + heading,
                             rewards=state.rewards | terms)  # fmt: skip

    def reset(self, key: jax.Array) -> Any:
        return self._with_reward(self.env.reset(key), jnp.zeros(()), jnp.zeros(()))

    def reset_to(self, key: jax.Array, data: Any, phase: jax.Array | None = None) -> Any:
        return self._with_reward(self.env.reset_to(key, data, phase), jnp.zeros(()), jnp.zeros(()))

    def step(self, state: Any, action: jax.Array) -> Any:
        c, s = self.env.config, self.settings
        if s.feedforward:
            ahead = (self.reference(state, 1) - self.env.home_joints) / c.action_scale
            action = action + ahead
        state = self.env.step(state, action)
        error = jnp.sum((state.data.qpos[self.env.ids.qpos] - self.reference(state)) ** 2)
        alive = c.ctrl_dt * ~state.terminated
        imitation = s.pose_weight * jnp.exp(-error / s.pose_sigma) * alive
        yaw = root_yaw(state.data.qpos[3:7])
        heading = s.heading_weight * jnp.exp(-(yaw**2) / s.heading_sigma) * alive
        return self._with_reward(state, imitation, heading)


def root_yaw(quat: Any) -> Any:
    """Yaw (rad, in (-pi, pi]) of (w, x, y, z) quaternions (last axis), ZYX Euler angles.

    deploy.yaw_of is the robot side's NumPy twin; this one also runs inside jit."""
    w, x, y, z = quat[..., 0], quat[..., 1], quat[..., 2], quat[..., 3]
    return jnp.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


class Prepared(NamedTuple):
    env: Any  # GaitTracking, inside amp.ReferenceInit
    table: PoseTable


def prepare(config: TrackConfig) -> Prepared:
    """The robot, the clips and their pose table, checked before a run directory exists."""
    import motion  # noqa: PLC0415 - needs MuJoCo, as env.py does
    from robot import resolve_path  # noqa: PLC0415

    base = ppo.default_env(config.env)
    clips = motion.load_motion(resolve_path(config.track.clips), config.env)
    turned = (
        float(np.max(np.abs(root_yaw(clips.qpos[:, 3:7])))) if config.track.heading_weight else 0
    )
    if turned > 0.05:
        raise ConfigError(f"track.heading_weight pays for yaw 0, but the clips in "
                          f"'{config.track.clips}' turn up to {turned:.2f} rad")  # fmt: skip
    table = pose_table(clips, clip_speeds(clips.clip_names), np.asarray(base.ids.qpos),
                       config.track.phase_bins)  # fmt: skip
    tracking = GaitTracking(base, table, config.track)
    starts = base.forward_states(clips.qpos, clips.qvel)
    phases = jnp.asarray(clips.phase, jnp.float32)
    return Prepared(amp.ReferenceInit(tracking, starts, phases, config.track.reference_init), table)


def make_train(config: TrackConfig, prepared: Prepared | None = None) -> ppo.Trainer:
    return ppo.make_train(config, (prepared or prepare(config)).env)


LEARNER = driver.Learner(
    script="track.py",
    description=__doc__.split("\n")[0],
    default_config=DEFAULT_CONFIG,
    load_config=load_config,
    prepare=prepare,
    make_train=make_train,
)


# ---------------------------------------------------------------------------------------------
# Recording the tracked gait as reference clips
# ---------------------------------------------------------------------------------------------


def tracked_clip_name(speed: float, walked: float) -> tuple[float, str]:
    """The speed label (m/s, 2 decimals) and file name of a clip recorded from the clip of
    `speed` that walked `walked` m/s: the walked speed first, then the source clip's."""
    label = round(float(walked), 2) + 0.0  # + 0.0: no -0.0
    return label, f"walk_{label:.2f}_from_{speed:.2f}.npz"


def tracked_clip_source(path: str) -> float | None:
    """The speed (m/s) a clip named by tracked_clip_name was recorded from; None for any other
    name."""
    match = re.fullmatch(r"walk_-?[0-9.]+_from_(-?[0-9.]+)\.npz", os.path.basename(path))
    return float(match.group(1)) if match else None


def is_tracker(policy_path: str) -> bool:
    """Whether a policy or checkpoint file was written by track.py (its config has [track])."""
    try:
        saved = json.loads(runs.load_msgpack(policy_path)["config"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # not a policy file at all: ppo.load_policy_params says what is wrong
    return isinstance(saved, dict) and "track" in saved


def load_tracker(policy_path: str) -> tuple[TrackConfig, GaitTracking, PoseTable, Any]:
    """(config, GaitTracking env at nominal physics, pose table, deterministic policy) of a
    track.py policy file; ConfigError if it is not one."""
    from env import nominal_config  # noqa: PLC0415

    _, actor_params, stats = ppo.load_policy_params(policy_path)  # checks the file
    saved = json.loads(runs.load_msgpack(policy_path)["config"])
    try:
        config = ppo.check_config(override(TrackConfig(env=ppo.default_env_config()), saved))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"'{policy_path}' is not a track.py policy: {e}") from None
    config = dataclasses.replace(config, env=nominal_config(config.env))
    prepared = prepare(config)
    policy = ppo.make_policy(config, actor_params, stats)
    return config, prepared.env.env, prepared.table, policy


def record(policy_path: str, out: str, settle: float = 2.0, seconds: float = 4.0) -> bool:
    """Run the tracking policy at each clip speed (nominal physics, from the clip's first frame)
    and write what the robot does after `settle` s as out/walk_<walked>_from_<clip>.npz, its
    `speed` the speed it walked; False if one fell or failed gait.check_clip's TRACKED
    tolerances (those of replayed clips, stance feet allowed 3 cm of slide)."""
    import gait  # noqa: PLC0415
    import motion  # noqa: PLC0415
    from robot import load_model, resolve_path  # noqa: PLC0415

    config, tracking, table, policy = load_tracker(policy_path)
    env_config = config.env
    speeds = np.asarray(table.speeds)
    clips = motion.load_motion(resolve_path(config.track.clips), env_config)
    first = np.array([np.flatnonzero(clips.clip == n)[0] for n in range(len(clips.clip_names))])
    first = first[np.argsort(clip_speeds(clips.clip_names))]  # in table order
    starts = tracking.forward_states(clips.qpos[first], clips.qvel[first])
    steps_settle, steps = round(settle / env_config.ctrl_dt), round(seconds / env_config.ctrl_dt)

    @jax.jit
    def run(key: jax.Array) -> tuple[Any, ...]:
        keys = jax.random.split(key, len(speeds))
        phases = jnp.asarray(clips.phase[first])
        state = jax.vmap(tracking.reset_to)(keys, starts, phases)
        commands = jnp.zeros((len(speeds), 3)).at[:, 0].set(jnp.asarray(speeds))
        state = jax.vmap(tracking.set_command)(state, commands)

        def body(carry: Any, _: Any) -> tuple[Any, tuple[Any, ...]]:
            state, alive = carry
            state = jax.vmap(tracking.step)(state, jax.vmap(policy)(state.obs))
            alive = alive & ~state.terminated
            ref = jax.vmap(tracking.reference)(state)
            return (state, alive), (state.data.qpos, state.data.qvel, state.info.phase, alive, ref)

        alive0 = jnp.ones(len(speeds), bool)
        return jax.lax.scan(body, (state, alive0), None, steps_settle + steps + 1)[1]

    qpos, qvel, phase, alive, ref = (np.asarray(x) for x in run(jax.random.key(0)))
    joints = np.asarray(tracking.ids.qpos)
    model, ok = load_model(env_config), True
    os.makedirs(out, exist_ok=True)
    for i, speed in enumerate(speeds):
        q, v = qpos[steps_settle:, i].astype(np.float64), qvel[steps_settle:, i].astype(np.float64)
        problems = [] if alive[-1, i] else ["fell"]
        problems += gait.check_clip(model, env_config, q, gait.TRACKED)
        # A clip is labelled with the speed the robot walked, not the one it was asked for: that
        # is the speed its motion belongs to (reference_gap.py compares policies at it).
        walked = (q[-1, 0] - q[0, 0]) / seconds
        rms = np.sqrt(np.mean((q[:, joints] - ref[steps_settle:, i]) ** 2))
        yaw = np.unwrap(np.asarray(root_yaw(q[:, 3:7])))
        verdict = "; ".join(problems) if problems else "passes the checks"
        print(f"{speed:.2f} m/s clip: walked {walked:.3f} m/s, joint RMS vs the clip {rms:.3f} "
              f"rad, turned {np.degrees(yaw[-1] - yaw[0]):.0f} deg (yaw range "
              f"{np.ptp(yaw):.2f} rad), {verdict}")  # fmt: skip
        if problems:
            ok = False
            continue
        label, name = tracked_clip_name(speed, walked)
        gait.write_clip(os.path.join(out, name), model, env_config, q, v,
                        speed=np.float64(label), phase=phase[steps_settle:, i])  # fmt: skip
    return ok


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["record"]:
        driver.main(LEARNER, argv)
        return
    parser = argparse.ArgumentParser(prog="track.py record", description=record.__doc__)
    parser.add_argument("policy", help="policy.msgpack or checkpoint of a track.py run")
    parser.add_argument("--out", default="data/tracked")
    parser.add_argument("--settle", type=float, default=2.0, help="s before recording")
    parser.add_argument("--seconds", type=float, default=4.0, help="s recorded per clip")
    args = parser.parse_args(argv[1:])
    try:
        sys.exit(0 if record(args.policy, args.out, args.settle, args.seconds) else 1)
    except ConfigError as e:
        parser.error(str(e))


if __name__ == "__main__":
    main()
