"""Reference motion for AMP: the clip file format, the loader, the features a discriminator sees.

A clip is an `.npz` file (numpy.savez; never pickled objects, it is read with allow_pickle=False):

    fps           ()      frames per second, > 0
    joint_names   (J,)    strings, any order; matched by name to EnvConfig.joints (or .actuators)
    root_pos      (T, 3)  m, world frame: the root body's origin (EnvConfig.root_body)
    root_quat     (T, 4)  w, x, y, z, world-from-body (MuJoCo's free joint qpos[3:7]), unit norm
    joint_pos     (T, J)  rad (m for a slide joint)
    root_lin_vel  (T, 3)  optional, m/s, world frame (MuJoCo's free joint qvel[0:3])
    root_ang_vel  (T, 3)  optional, rad/s, BODY frame (MuJoCo's free joint qvel[3:6])
    joint_vel     (T, J)  optional, rad/s
    phase         (T,)    optional, rad: the env's gait clock (EnvInfo.phase) at each frame, used
                          when an episode starts on the frame (amp.ReferenceInit)

Other keys are ignored. `load_motion(paths, env_config)` turns clips into full MuJoCo states of the
configured model at the control rate (1 / ctrl_dt): absent velocities come from the file's frames
(central differences, one-sided at the ends; the angular velocity from quaternion differences,
log(q[t-1]^-1 q[t+1]) / 2 dt in the body frame), then positions and velocities are resampled
linearly and orientations by slerp. `motion_features` and `transitions` give what a discriminator
sees, through the same `env.amp_features` as the simulated robot.
"""

from __future__ import annotations

import glob
import os
import zipfile
from collections.abc import Callable, Sequence

import jax
import mujoco
import numpy as np
from flax import struct

from config import ConfigError
from env import EnvConfig
from robot import load_model

REQUIRED = ("fps", "joint_names", "root_pos", "root_quat", "joint_pos")
QUAT_TOLERANCE = 1e-3  # | |q| - 1 | allowed in a file (float32 storage gives ~1e-7)


@struct.dataclass
class Motion:
    """Reference frames of one or more clips as full MuJoCo states at the control rate.

    A pytree (arrays traced, names static), so a jitted reset can index a random frame of it.
    """

    qpos: np.ndarray  # (T, nq) float32
    qvel: np.ndarray  # (T, nv) float32
    clip: np.ndarray  # (T,) int32, index into clip_names
    phase: np.ndarray | None  # (T,) float32 gait clock in [0, 2 pi), if every clip has one
    fps: float = struct.field(pytree_node=False)  # 1 / EnvConfig.ctrl_dt
    clip_names: tuple[str, ...] = struct.field(pytree_node=False)  # file paths
    joint_names: tuple[str, ...] = struct.field(pytree_node=False)  # configured joints, filled
    ignored_joints: tuple[str, ...] = struct.field(pytree_node=False)  # in files, not configured

    @property
    def num_frames(self) -> int:
        return self.qpos.shape[0]


# ---------------------------------------------------------------------------------------------
# Quaternions (w, x, y, z), vectorized over leading axes
# ---------------------------------------------------------------------------------------------


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    """The inverse of a unit quaternion."""
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_log(q: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, angle <= pi) of a unit quaternion: the shorter arc."""
    q = np.where(q[..., :1] < 0, -q, q)  # q and -q are the same rotation; w >= 0 is the short one
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2 * np.arctan2(s, q[..., :1])
    # angle / s -> 2 as the rotation vanishes; avoid 0 / 0.
    return v * np.where(s > 1e-12, angle / np.maximum(s, 1e-12), 2.0)


def quat_exp(r: np.ndarray) -> np.ndarray:
    """Unit quaternion of a rotation vector."""
    angle = np.linalg.norm(r, axis=-1, keepdims=True)
    sinc = np.where(angle > 1e-12, np.sin(angle / 2) / np.maximum(angle, 1e-12), 0.5)
    return np.concatenate([np.cos(angle / 2), r * sinc], axis=-1)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of one unit quaternion."""
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, np.float64))
    return m.reshape(3, 3)


def slerp(q0: np.ndarray, q1: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Spherical interpolation from q0 (u = 0) to q1 (u = 1) along the shorter arc."""
    u = np.asarray(u)[..., None]
    return quat_mul(q0, quat_exp(u * quat_log(quat_mul(quat_conj(q0), q1))))


# ---------------------------------------------------------------------------------------------
# Finite differences and resampling
# ---------------------------------------------------------------------------------------------


def derivative(x: np.ndarray, dt: float) -> np.ndarray:
    """d/dt along axis 0: central differences inside, one-sided at both ends."""
    return np.gradient(x, dt, axis=0, edge_order=1)


def body_angular_velocity(quat: np.ndarray, dt: float) -> np.ndarray:
    """Body-frame angular velocity (T, 3) of world-from-body quaternions (T, 4), T >= 2.

    Central: log(q[t-1]^-1 q[t+1]) / 2dt, one-sided at the ends; exact for a constant body rate.
    """
    before = np.concatenate([quat[:1], quat[:-2], quat[-2:-1]])
    after = np.concatenate([quat[1:2], quat[2:], quat[-1:]])
    steps = np.full((len(quat), 1), 2 * dt)
    steps[[0, -1]] = dt
    return quat_log(quat_mul(quat_conj(before), after)) / steps


def resample_times(num_frames: int, fps: float, rate: float) -> np.ndarray:
    """Times at `rate` Hz covering a clip of `num_frames` frames at `fps` (no extrapolation)."""
    duration = (num_frames - 1) / fps
    return np.arange(int(np.floor(duration * rate + 1e-6)) + 1) / rate


def _bracket(times: np.ndarray, fps: float, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the source frame at or before each time, and the fraction to the next one."""
    x = times * fps
    index = np.clip(np.floor(x + 1e-9).astype(int), 0, num_frames - 2)
    return index, np.clip(x - index, 0.0, 1.0)


def resample_linear(values: np.ndarray, fps: float, times: np.ndarray) -> np.ndarray:
    """Linear interpolation of per-frame values (T, ...) sampled at `fps` to `times`."""
    i, u = _bracket(times, fps, len(values))
    u = u.reshape(-1, *([1] * (values.ndim - 1)))
    return (1 - u) * values[i] + u * values[i + 1]


def resample_quat(quat: np.ndarray, fps: float, times: np.ndarray) -> np.ndarray:
    """Slerp of per-frame unit quaternions (T, 4) sampled at `fps` to `times`."""
    i, u = _bracket(times, fps, len(quat))
    return slerp(quat[i], quat[i + 1], u)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def save_clip(path: str, fps: float, joint_names: Sequence[str], **arrays: np.ndarray) -> None:
    """Write a clip in the format above (root_pos, root_quat, joint_pos, optional velocities...).

    Floats are stored as float32 (half the size; the loader computes in float64).
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    names = np.array(list(joint_names), dtype=str)
    arrays = {
        k: np.asarray(v, np.float32) if np.asarray(v).dtype.kind == "f" else np.asarray(v)
        for k, v in arrays.items()
    }
    np.savez(path, fps=np.float64(fps), joint_names=names, **arrays)


def read_clip(path: str) -> dict[str, np.ndarray]:
    """The arrays of one clip file, checked (keys, shapes, finite, fps, unit quaternions)."""

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"motion file '{path}': {problem}")

    try:
        raw = None
        npz = np.load(path, allow_pickle=False)
        if isinstance(npz, np.lib.npyio.NpzFile):
            with npz:
                raw = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise bad("not found") from None
    except ValueError as e:  # a pickle, or an object array inside the archive
        raise bad(f"holds pickled Python objects, which are never loaded ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise bad(f"is not a readable .npz archive ({e})") from None
    if raw is None:
        raise bad("is a single .npy array, not an .npz archive of named arrays")
    missing = [key for key in REQUIRED if key not in raw]
    if missing:
        raise bad(f"lacks {missing} (it has {sorted(raw)}); required: {list(REQUIRED)}")

    names = raw["joint_names"]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise bad(f"joint_names must be a 1-D array of strings, got {names.dtype} {names.shape}")
    names = [str(n) for n in names]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise bad(f"joint_names repeats {duplicates}")
    fps = raw["fps"]
    if fps.size != 1 or fps.dtype.kind not in "fiu" or not np.isfinite(fps).all() or fps <= 0:
        raise bad(f"fps must be one positive number, got {fps!r}")

    num_frames = len(raw["root_pos"]) if raw["root_pos"].ndim else 0
    shapes = {
        "root_pos": 3,
        "root_quat": 4,
        "joint_pos": len(names),
        "root_lin_vel": 3,
        "root_ang_vel": 3,
        "joint_vel": len(names),
    }
    clip = {"fps": float(fps.reshape(())), "joint_names": names}
    for key, width in shapes.items():
        if key not in raw:
            continue
        value = raw[key]
        if value.shape != (num_frames, width):
            raise bad(f"{key} has shape {value.shape}, want ({num_frames}, {width})")
        if value.dtype.kind not in "fiu":
            raise bad(f"{key} must hold numbers, got {value.dtype}")
        value = value.astype(np.float64)
        if not np.isfinite(value).all():
            frame = int(np.nonzero(~np.isfinite(value).all(axis=1))[0][0])
            raise bad(f"{key} has a NaN or inf at frame {frame}")
        clip[key] = value
    if "phase" in raw:
        phase = raw["phase"]
        if phase.shape != (num_frames,) or phase.dtype.kind not in "fiu":
            raise bad(
                f"phase has shape {phase.shape} ({phase.dtype}), want ({num_frames},) numbers"
            )
        if not np.isfinite(phase).all():
            raise bad("phase has a NaN or inf")
        clip["phase"] = phase.astype(np.float64)
    if num_frames < 2:
        raise bad(f"has {num_frames} frame(s); a clip needs at least 2")

    norm = np.linalg.norm(clip["root_quat"], axis=1)
    if (norm < 1e-6).any():
        raise bad(f"root_quat is zero at frame {int(np.argmax(norm < 1e-6))}")
    off = np.abs(norm - 1) > QUAT_TOLERANCE
    if off.any():
        frame = int(np.argmax(off))
        raise bad(
            f"root_quat at frame {frame} has norm {norm[frame]:.6f}, want unit quaternions "
            "(w, x, y, z)"
        )
    clip["root_quat"] = clip["root_quat"] / norm[:, None]
    return clip


def clip_paths(paths: str | Sequence[str]) -> list[str]:
    """Files named by `paths`: a file, a folder (its *.npz, sorted) or a list of those."""
    out = []
    for path in [paths] if isinstance(paths, str) else paths:
        if os.path.isdir(path):
            found = sorted(glob.glob(os.path.join(path, "*.npz")))
            if not found:
                raise ConfigError(f"motion folder '{path}' has no .npz clips")
            out += found
        else:
            out.append(path)
    if not out:
        raise ConfigError("no motion files given")
    return out


# ---------------------------------------------------------------------------------------------
# The loader
# ---------------------------------------------------------------------------------------------


def load_motion(paths: str | Sequence[str], env_config: EnvConfig) -> Motion:
    """Clips (file, folder or list) as states of the configured model at the control rate.

    Joints map by name onto the configured joints: missing ones are an error, extra ones are
    ignored and listed in Motion.ignored_joints. Model joints not configured stay at the home
    keyframe. Absent velocities come from finite differences at the file's rate, then everything
    is resampled: linear for positions and velocities, slerp for the root orientation.
    """
    model = load_model(env_config)
    joints = tuple(env_config.joints or env_config.actuators)
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name) for name in joints]
    unknown = [name for name, i in zip(joints, ids, strict=True) if i < 0]
    if unknown:
        raise ConfigError(f"joints {unknown} are not in model '{env_config.model_path}'")
    qpos_index, qvel_index = model.jnt_qposadr[ids], model.jnt_dofadr[ids]
    home = model.key(env_config.home_keyframe).qpos
    rate = 1.0 / env_config.ctrl_dt

    qpos, qvel, clip_index, files, ignored = [], [], [], clip_paths(paths), set()
    phases = []
    for n, path in enumerate(files):
        clip = read_clip(path)
        names = clip["joint_names"]
        missing = [j for j in joints if j not in names]
        if missing:
            raise ConfigError(
                f"motion file '{path}' lacks configured joints {missing} (it has "
                f"{names}; EnvConfig.joints or .actuators name them)"
            )
        ignored |= set(names) - set(joints)
        order = [names.index(j) for j in joints]
        fps = clip["fps"]
        times = resample_times(len(clip["root_pos"]), fps, rate)
        if len(times) < 2:
            raise ConfigError(
                f"motion file '{path}' lasts {(len(clip['root_pos']) - 1) / fps:g} "
                f"s: under 2 frames at the control rate {rate:g} Hz"
            )

        # -- velocities at the file's rate, where the file has none ----------------------------
        dt = 1.0 / fps
        lin_vel = clip.get("root_lin_vel", derivative(clip["root_pos"], dt))
        ang_vel = clip.get("root_ang_vel", body_angular_velocity(clip["root_quat"], dt))
        joint_vel = clip.get("joint_vel", derivative(clip["joint_pos"], dt))

        # -- resample and assemble full states -----------------------------------------------
        q = np.tile(home, (len(times), 1))
        q[:, 0:3] = resample_linear(clip["root_pos"], fps, times)
        q[:, 3:7] = resample_quat(clip["root_quat"], fps, times)
        q[:, qpos_index] = resample_linear(clip["joint_pos"][:, order], fps, times)
        v = np.zeros((len(times), model.nv))
        v[:, 0:3] = resample_linear(lin_vel, fps, times)
        v[:, 3:6] = resample_linear(ang_vel, fps, times)
        v[:, qvel_index] = resample_linear(joint_vel[:, order], fps, times)
        qpos.append(q)
        qvel.append(v)
        clip_index.append(np.full(len(times), n, np.int32))
        if "phase" in clip:  # a clock: resampled unwrapped, then wrapped again
            unwrapped = resample_linear(np.unwrap(clip["phase"])[:, None], fps, times)[:, 0]
            phases.append(np.mod(unwrapped, 2 * np.pi))

    return Motion(
        qpos=np.concatenate(qpos).astype(np.float32),
        qvel=np.concatenate(qvel).astype(np.float32),
        clip=np.concatenate(clip_index),
        phase=np.concatenate(phases).astype(np.float32) if len(phases) == len(files) else None,
        fps=rate,
        clip_names=tuple(files),
        joint_names=joints,
        ignored_joints=tuple(sorted(ignored)),
    )


# ---------------------------------------------------------------------------------------------
# What the discriminator sees
# ---------------------------------------------------------------------------------------------


def make_featurize(env) -> Callable[[np.ndarray, np.ndarray], jax.Array]:
    """env.amp_features over a batch of frames, jitted once: (N, nq), (N, nv) -> (N, features)."""
    return jax.jit(jax.vmap(env.amp_features))


def motion_features(env, motion: Motion, featurize: Callable | None = None) -> np.ndarray:
    """(T, env.amp_feature_size) features of every frame, by the env's own amp_features."""
    featurize = featurize or make_featurize(env)
    return np.asarray(featurize(motion.qpos, motion.qvel))


def transition_index(motion: Motion) -> np.ndarray:
    """Frames t whose successor t + 1 is in the same clip: the starts of transition pairs."""
    return np.nonzero(motion.clip[:-1] == motion.clip[1:])[0]


def transitions(motion: Motion, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (s_t, s_t+1) of features, (N, F) each, none spanning two clips."""
    t = transition_index(motion)
    return features[t], features[t + 1]
