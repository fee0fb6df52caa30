"""Loading a robot's MJCF file and resolving the names its config gives, before any compilation.

`load_model(config)` applies the physics options of an `env.EnvConfig`; `resolve_names(model,
config)` maps every configured actuator, joint, body, site and geom name to its id and checks
what env.py needs of any robot (servos on hinge joints, a home keyframe with the soles on the
floor, soles that collide). Each problem raises ConfigError naming the element and what to do,
so a new robot fails here, in a second, not inside a compiled step.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from config import ConfigError, check

if TYPE_CHECKING:
    from env import EnvConfig

ROOT = os.path.dirname(os.path.abspath(__file__))


@dataclasses.dataclass(frozen=True)
class ModelIds:
    """Ids of every configured element (NumPy, so they index arrays as constants when traced)."""

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
    """Check the config, load the MJCF file, apply the physics options; errors name the culprit."""
    check(config)
    path = resolve_path(config.model_path)
    if not os.path.isfile(path):
        raise ConfigError(
            f"model file not found: '{config.model_path}' (looked at {path}; a relative path is "
            "looked for next to the config file that sets it, then from the working directory, "
            "then in the repository)"
        )
    try:
        model = mujoco.MjModel.from_xml_path(path)
    except ValueError as e:
        message = "; ".join(str(e).splitlines())  # MuJoCo's parser reports on several lines
        raise ConfigError(f"malformed model file '{path}': {message}") from None
    solvers = {"cg": mujoco.mjtSolver.mjSOL_CG, "newton": mujoco.mjtSolver.mjSOL_NEWTON}
    model.opt.timestep = config.sim_dt
    model.opt.solver = solvers[config.solver]
    model.opt.iterations = config.iterations
    model.opt.ls_iterations = config.ls_iterations
    model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_EULERDAMP
    return model


# What to add to a model that lacks a kind of element altogether, or has it only without names.
MISSING = {
    "actuator": '<position name="left_knee" joint="left_knee" kp="20" kv="0.5"/> in <actuator>, '
    "one per servo",
    "keyframe": '<key name="home" qpos="..."/> in <keyframe>, standing with the feet on the floor '
    "(qpos: root x y z, quaternion w x y z, then the joints in tree order)",
}
HOME_TOLERANCE = 0.02  # m: how far from the floor a sole or foot site may be in the home pose


def resolve_names(m: mujoco.MjModel, config: EnvConfig) -> ModelIds:
    """Map every configured name to a model id and check what env.py needs of the model.

    Position servos (gain kp = -bias, gear 1) on hinge or slide joints, the root body carrying
    the first, free joint, colliding sole geoms on their foot, and a home keyframe standing on
    the floor. The first problem raises ConfigError naming the element and what to do.
    """
    path = config.model_path

    def lookup(kind: str, obj: mujoco.mjtObj, name: str) -> int:
        i = mujoco.mj_name2id(m, obj, name)
        if i < 0:
            have = [mujoco.mj_id2name(m, obj, j) for j in range(_count(m, kind))]
            close = difflib.get_close_matches(name, [h for h in have if h], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            if kind in MISSING and have and not any(have):
                hint = f": its {kind}s have no names; name them like {MISSING[kind]}"
            elif kind in MISSING and not have:
                hint = f": it has no {kind}s; add {MISSING[kind]}"
            raise ConfigError(f"{kind} '{name}' is not in model '{path}'{hint}")
        return i

    if not config.actuators:
        raise ConfigError("no actuators configured: name the servos the policy drives")
    actuators = [lookup("actuator", mujoco.mjtObj.mjOBJ_ACTUATOR, a) for a in config.actuators]
    joint_names = config.joints or config.actuators
    if len(joint_names) != len(actuators):
        raise ConfigError(f"{len(joint_names)} joints configured for {len(actuators)} actuators")
    joints = [lookup("joint", mujoco.mjtObj.mjOBJ_JOINT, j) for j in joint_names]
    for a, j, name in zip(actuators, joints, joint_names, strict=True):
        _check_servo(m, a, path)
        if m.actuator_trnid[a, 0] != j:
            actuator = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
            raise ConfigError(f"actuator '{actuator}' does not drive joint '{name}'")
        if int(m.jnt_type[j]) not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
            raise ConfigError(f"joint '{name}' in '{path}' is not a hinge or slide joint")
    root = lookup("body", mujoco.mjtObj.mjOBJ_BODY, config.root_body)
    free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    if not free or m.jnt_bodyid[free[0]] != root or m.jnt_qposadr[free[0]] != 0:
        raise ConfigError(
            f"root body '{config.root_body}' must carry the model's first, free joint: in "
            f"'{path}', give it <freejoint/> and no other body a joint before it"
        )
    torso = lookup("body", mujoco.mjtObj.mjOBJ_BODY, config.torso_body)
    lightest = (
        m.body_mass[torso] * config.randomization.link_mass_scale[0]
        + config.randomization.torso_mass_offset[0]
    )
    if lightest <= 0:
        raise ConfigError(
            f"randomization.torso_mass_offset {config.randomization.torso_mass_offset} can "
            f"leave torso_body '{config.torso_body}' ({m.body_mass[torso]:.3f} kg) without mass"
        )
    key = lookup("keyframe", mujoco.mjtObj.mjOBJ_KEY, config.home_keyframe)
    imu = lookup("site", mujoco.mjtObj.mjOBJ_SITE, config.imu_site)
    feet = [lookup("site", mujoco.mjtObj.mjOBJ_SITE, s) for s in config.feet_sites]
    soles = [lookup("geom", mujoco.mjtObj.mjOBJ_GEOM, g) for g in config.sole_geoms]
    if not feet or len(soles) % len(feet):
        raise ConfigError(f"{len(soles)} sole geoms do not split evenly over {len(feet)} feet")
    per_foot = len(soles) // len(feet)
    for i, (g, name) in enumerate(zip(soles, config.sole_geoms, strict=True)):
        site = config.feet_sites[i // per_foot]
        if not _below(m, m.geom_bodyid[g], m.site_bodyid[feet[i // per_foot]]):
            raise ConfigError(
                f"sole geom '{name}' is not on the foot of site '{site}' in '{path}': list "
                f"sole_geoms grouped per foot ({per_foot} each), in feet_sites order"
            )
        if not m.geom_contype[g] | m.geom_conaffinity[g]:
            raise ConfigError(f"sole geom '{name}' in '{path}' collides with nothing")
    ids = ModelIds(
        actuators=np.array(actuators),
        joints=np.array(joints),
        qpos=m.jnt_qposadr[joints],
        qvel=m.jnt_dofadr[joints],
        dofs=m.jnt_dofadr[joints],
        root=root,
        torso=torso,
        imu=imu,
        imu_body=int(m.site_bodyid[imu]),
        feet=np.array(feet),
        soles=np.array(soles),
        friction_geoms=np.nonzero(m.geom_contype | m.geom_conaffinity)[0],
    )
    _check_home(m, key, ids, config)
    return ids


def _check_servo(m: mujoco.MjModel, a: int, path: str) -> None:
    """Actuator `a` is a position servo, force = kp (target - q) - kv qdot, on its joint alone.

    env.py sends joint-angle targets and randomizes kp and kv in exactly these parameters, so any
    other actuator (a <motor>, a <velocity>, a gear) would silently become something else.
    """
    name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
    kp, bias = m.actuator_gainprm[a, 0], m.actuator_biasprm[a]
    servo = (
        int(m.actuator_gaintype[a]) == mujoco.mjtGain.mjGAIN_FIXED
        and int(m.actuator_biastype[a]) == mujoco.mjtBias.mjBIAS_AFFINE
        and kp > 0
        and bias[0] == 0
        and bias[1] == -kp
    )
    if not servo:
        raise ConfigError(
            f"actuator '{name}' in '{path}' is not a position servo (gain kp > 0, bias 0 -kp "
            f'-kv): use <position name="{name}" joint="..." kp="..." kv="..."/>'
        )
    if int(m.actuator_trntype[a]) != mujoco.mjtTrn.mjTRN_JOINT:
        raise ConfigError(f"actuator '{name}' in '{path}' does not act on a joint")
    if list(m.actuator_gear[a]) != [1, 0, 0, 0, 0, 0]:
        raise ConfigError(
            f"actuator '{name}' in '{path}' has gear {m.actuator_gear[a, 0]:g}: its target must "
            "be the joint angle, so remove gear (1)"
        )


def _below(m: mujoco.MjModel, body: int, ancestor: int) -> bool:
    """Whether `body` is `ancestor` or in its subtree."""
    while body != ancestor and body != 0:
        body = m.body_parentid[body]
    return body == ancestor


def _check_home(m: mujoco.MjModel, key: int, ids: ModelIds, config: EnvConfig) -> None:
    """In the home keyframe every sole's lowest point and every foot site are on the floor (z 0).

    Heights, contacts and the swing-foot reward are measured from z = 0, and episodes start here.
    """
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, key)
    mujoco.mj_forward(m, d)
    where = f"in keyframe '{config.home_keyframe}' of '{config.model_path}'"
    sole_z = d.geom_xpos[ids.soles, 2] - sole_thickness(m, ids.soles, config)
    for name, z in zip(config.sole_geoms, sole_z, strict=True):
        if abs(z) > HOME_TOLERANCE:
            raise ConfigError(
                f"{where}, sole geom '{name}' is {z:.3f} m above the floor: the home pose must "
                "stand with the soles on the floor (z = 0; the root height is qpos[2])"
            )
    for name, z in zip(config.feet_sites, d.site_xpos[ids.feet, 2], strict=True):
        if abs(z) > HOME_TOLERANCE:
            raise ConfigError(
                f"{where}, foot site '{name}' is {z:.3f} m above the floor: put each foot site "
                "at the bottom of its foot, level with the sole"
            )


def force_limits(m: mujoco.MjModel, actuators: np.ndarray) -> np.ndarray:
    """(2, n) float32: each actuator's force range, -inf..inf where its force is not limited."""
    lo, hi = m.actuator_forcerange[actuators].T
    limited = m.actuator_forcelimited[actuators] != 0  # "auto" is resolved when the model compiles
    return np.stack([np.where(limited, lo, -np.inf), np.where(limited, hi, np.inf)]).astype(
        np.float32
    )


def mirror_image(
    m: mujoco.MjModel, ids: ModelIds, qpos: np.ndarray, mirror_names: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """How the robot's sagittal plane (the base frame's x-z plane at `qpos`) maps it onto itself:
    (joints, imu): `joints` takes joint values (policy order) to their mirror image, each joint
    named with mirror_names[0] trading places with the one named with mirror_names[1] (others map
    to themselves), signed so that its rotation mirrors its partner's; `imu` reflects a direction
    in the IMU frame. ConfigError where the model is not its own mirror image in this sense.
    """
    left, right = mirror_names
    d = mujoco.MjData(m)
    d.qpos[:] = qpos
    mujoco.mj_kinematics(m, d)
    base = d.xmat[ids.root].reshape(3, 3)  # world from base
    flip = np.diag([1.0, -1.0, 1.0])
    names = [m.joint(j).name for j in ids.joints]
    axes = [base.T @ d.xaxis[j] for j in ids.joints]
    anchors = [base.T @ (d.xanchor[j] - d.xpos[ids.root]) for j in ids.joints]
    joints = np.zeros((len(names), len(names)))
    for i, name in enumerate(names):
        other = name.replace(left, "\0").replace(right, left).replace("\0", right)
        if other not in names:
            raise ConfigError(f"mirror: joint '{name}' has no partner '{other}'")
        j = names.index(other)
        off = np.linalg.norm(flip @ anchors[i] - anchors[j])
        if off > 2e-3:  # also catches names that do not tell left from right
            raise ConfigError(
                f"mirror: joint '{name}' is {off * 1000:.0f} mm from the mirror image of "
                f"'{other}' (env.mirror_names {mirror_names})"
            )
        sign = -(flip @ axes[i]) @ axes[j]  # a reflected rotation turns about -flip @ axis
        if abs(abs(sign) - 1.0) > 1e-3:
            raise ConfigError(
                f"mirror: the axis of joint '{name}' is not the mirror image of '{other}''s"
            )
        joints[j, i] = np.sign(sign)
    imu = base.T @ d.site_xmat[ids.imu].reshape(3, 3)  # base from IMU
    return joints, imu.T @ flip @ imu


def sole_thickness(m: mujoco.MjModel, soles: np.ndarray, config: EnvConfig) -> np.ndarray:
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
