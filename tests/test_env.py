"""Tests of env.py and wrappers.py on CPU. Compiled functions are shared per module (MJX compiles
are slow), so most tests reuse one small batch of robots and one rollout."""

import copy
import dataclasses
import os

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from config import ConfigError, override
from env import EnvConfig, WildRobotEnv, nominal_config
from robot import force_limits
from wrappers import VecEnv, _where_done

NUM_ENVS = 4
HERE = os.path.dirname(os.path.abspath(__file__))
# Default randomization, but no pushes: the standing test is about holding the home pose.
NO_PUSH = override(EnvConfig(), {"randomization.push_velocity": (0.0, 0.0)})


@pytest.fixture(scope="module")
def robot():
    """One env, its jitted batched step, and a 10 s rollout with zero action (the shared run)."""
    env = WildRobotEnv(NO_PUSH)
    venv = VecEnv(env, NUM_ENVS)

    def rollout(vstate, length):
        def body(vstate, _):
            vstate = venv.step(vstate, jnp.zeros((NUM_ENVS, env.action_size)))
            return vstate, vstate

        return jax.lax.scan(body, vstate, None, length)

    reset = jax.jit(venv.reset)
    rollout = jax.jit(rollout, static_argnums=1)
    start = reset(jax.random.key(0))
    final, traj = rollout(start, env.config.episode_length)
    return env, venv, reset, rollout, start, final, traj


def _same_types(a, b):
    """Leaves agree in shape, dtype and weak type (else a jitted call silently recompiles)."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert jax.typeof(x) == jax.typeof(y), (jax.typeof(x), jax.typeof(y))


def test_shapes_dtypes_and_reset_matches_step_types(robot):
    env, _, _, _, start, final, _ = robot
    s = start.env
    chex.assert_shape(s.obs, (NUM_ENVS, env.obs_size))
    chex.assert_shape(s.critic_obs, (NUM_ENVS, env.critic_obs_size))
    chex.assert_shape([s.reward, s.terminated, s.truncated], (NUM_ENVS,))
    chex.assert_type([s.obs, s.critic_obs, s.reward], jnp.float32)
    chex.assert_type([s.terminated, s.truncated], bool)
    assert env.obs_size == 3 + 3 + 3 * 9 + 3 + 2
    assert set(s.rewards) == {f.name for f in dataclasses.fields(env.config.reward_scales)}
    chex.assert_trees_all_equal_structs(start, final)
    _same_types(start, final)


def test_layout_slices_by_name(robot):
    env, _, _, _, start, _, _ = robot
    obs = start.env.critic_obs[0]
    joint_pos = obs[env.critic_layout.slice("joint_pos")]
    np.testing.assert_allclose(joint_pos, -start.env.info.params.joint_offset[0], atol=1e-6)
    gravity = obs[env.critic_layout.slice("gravity")]
    np.testing.assert_allclose(gravity, [0, 0, -1], atol=1e-3)
    with pytest.raises(KeyError, match="no observation piece 'nope'"):
        env.actor_layout.slice("nope")


def test_stands_in_home_for_10_seconds(robot):
    env, _, _, _, _, _, traj = robot
    s = traj.env
    assert not bool(s.terminated.any()), "robot fell while holding the home pose"
    height = s.metrics["base_height"]
    assert float(height.min()) > env.config.base_height_target - 0.03
    # Truncated exactly at the episode length, then auto-reset to a fresh episode.
    assert bool(s.truncated[-1].all()) and not bool(s.truncated[:-1].any())
    np.testing.assert_array_equal(traj.stats.done_length[-1], env.config.episode_length)
    np.testing.assert_array_equal(s.info.step[-1], 0)


def test_auto_reset_draws_fresh_randomization_and_keeps_final_obs(robot):
    _, _, _, _, start, final, traj = robot
    before = start.env.info.params.friction
    after = final.env.info.params.friction
    assert not np.allclose(before, after), "reset reused the first episode's randomization"
    # final_obs is the finished episode's last observation, not the new episode's first.
    assert not np.allclose(traj.final_critic_obs[-1], final.env.critic_obs)
    np.testing.assert_allclose(traj.final_critic_obs[-2], traj.env.critic_obs[-2])


def test_same_key_same_trajectory(robot):
    _, _, reset, rollout, _, _, _ = robot
    a = rollout(reset(jax.random.key(3)), 500)[1]
    b = rollout(reset(jax.random.key(3)), 500)[1]
    c = rollout(reset(jax.random.key(4)), 500)[1]
    chex.assert_trees_all_equal(a.env.data.qpos, b.env.data.qpos)
    chex.assert_trees_all_equal(a.env.obs, b.env.obs)
    assert not np.allclose(a.env.data.qpos, c.env.data.qpos)


def test_nan_in_physics_terminates_and_resets_cleanly(robot):
    _, _, _, rollout, start, _, _ = robot
    bad = start.env.data.qvel.at[1].set(jnp.nan)
    vstate = start.replace(env=start.env.replace(data=start.env.data.replace(qvel=bad)))
    after = jax.tree.map(lambda x: x[0], rollout(vstate, 500)[1])  # the first step
    np.testing.assert_array_equal(after.env.terminated, [False, True, False, False])
    np.testing.assert_array_equal(after.env.metrics["nan"], [0, 1, 0, 0])
    for x in (after.final_obs, after.final_critic_obs, after.env.obs, after.env.reward):
        assert bool(jnp.isfinite(x).all())
    assert all(bool(jnp.isfinite(v).all()) for v in after.env.rewards.values())
    # A blow-up costs what a fall costs, and scores nothing else.
    c = robot[0].config
    for name, value in after.env.rewards.items():
        want = c.reward_scales.termination * c.ctrl_dt if name == "termination" else 0.0
        np.testing.assert_allclose(value[1], want, err_msg=name)
    assert bool(jnp.isfinite(after.env.data.qvel).all()), "the robot was not reset"
    np.testing.assert_array_equal(after.env.info.step, [1, 0, 1, 1])


def test_push_moves_base_and_fall_is_detected(robot):
    env, _, _, rollout, start, _, _ = robot
    info = start.env.info
    info = info.replace(
        params=info.params.replace(push_speed=jnp.full(NUM_ENVS, 1.5, jnp.float32)),
        push_countdown=jnp.full(NUM_ENVS, 5, jnp.int32),
    )
    traj = rollout(start.replace(env=start.env.replace(info=info)), 500)[1]
    first_push = traj.env.metrics["push"][:, 0].argmax()
    assert int(first_push) == 5 and float(traj.env.metrics["push"].sum()) >= NUM_ENVS
    speed = jnp.linalg.norm(
        traj.final_critic_obs[..., env.critic_layout.slice("base_lin_vel")], axis=-1
    )
    assert float(speed[5:10].max()) > 1.0, "the push did not move the base"
    assert bool(traj.env.terminated.any(axis=0).all()), "the pushed robot never counted as fallen"


def test_randomization_stays_in_range_and_zero_range_is_nominal(robot):
    env = robot[0]
    r = env.config.randomization
    p = jax.jit(jax.vmap(env.sample_params))(jax.random.split(jax.random.key(1), 2000))
    for name, lo, hi in [
        ("friction", *r.floor_friction),
        ("mass_scale", *r.link_mass_scale),
        ("torso_mass_offset", *r.torso_mass_offset),
        ("kp_scale", *r.kp_scale),
        ("kv_scale", *r.kv_scale),
        ("damping_scale", *r.damping_scale),
        ("frictionloss_scale", *r.frictionloss_scale),
        ("armature_scale", *r.armature_scale),
        ("joint_offset", *r.joint_offset),
        ("action_delay", *r.action_delay),
    ]:
        v = np.asarray(getattr(p, name))
        assert v.min() >= lo and v.max() <= hi, name
        assert v.max() - v.min() > 0.5 * (hi - lo), f"{name} does not cover its range"
    # Every randomized model field changes by the sampled amounts, and nothing else does.
    one = jax.tree.map(lambda x: x[0], p)
    m, m0, ids = env.randomized_model(one), env.model, env.ids
    close = lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5)  # noqa: E731
    friction = np.asarray(m0.geom_friction).copy()
    friction[ids.friction_geoms, 0] = one.friction
    close(m.geom_friction, friction)
    mass = np.asarray(m0.body_mass) * np.asarray(one.mass_scale)
    mass[0] = m0.body_mass[0]
    mass[ids.torso] += one.torso_mass_offset
    close(m.body_mass, mass)
    ratio = mass / np.maximum(np.asarray(m0.body_mass), 1e-9)
    close(m.body_inertia, np.asarray(m0.body_inertia) * ratio[:, None])
    gain = 21.1 * one.kp_scale
    close(m.actuator_gainprm[:, 0], np.full(env.nu, gain))
    close(m.actuator_biasprm[:, 1], np.full(env.nu, -gain))
    close(m.actuator_biasprm[:, 2], np.full(env.nu, -0.5 * one.kv_scale))
    for name, scale in [("dof_damping", one.damping_scale),
                        ("dof_frictionloss", one.frictionloss_scale),
                        ("dof_armature", one.armature_scale)]:  # fmt: skip
        want = np.asarray(getattr(m0, name)).copy()
        want[ids.dofs] *= scale
        close(getattr(m, name), want)
        assert not np.allclose(getattr(m, name), getattr(m0, name)), name
    # Zero-width ranges (env.nominal_config sets them) give the nominal model exactly.
    env0 = WildRobotEnv(nominal_config(EnvConfig()))
    p0 = env0.sample_params(jax.random.key(2))
    m0 = env0.randomized_model(p0)
    np.testing.assert_allclose(m0.body_mass, env0.model.body_mass)
    np.testing.assert_allclose(m0.dof_damping, env0.model.dof_damping)
    np.testing.assert_allclose(m0.actuator_gainprm, env0.model.actuator_gainprm)
    assert float(p0.friction) == 1.0 and int(p0.action_delay) == 0
    assert float(p0.push_speed) == 0.0 and not np.asarray(p0.joint_offset).any()
    assert not any(dataclasses.asdict(env0.config.noise).values())
    assert env0.config.zero_command_prob == 0.0


def test_turn_in_place_share_of_commands():
    """turn_in_place_prob zeroes the walking part of that share of the non-zero commands, and
    leaves every other command as the random stream would have drawn it without the setting."""
    base = dict(lin_vel_x=(0.1, 0.5), lin_vel_y=(-0.3, 0.3), ang_vel_yaw=(-1.0, 1.0),
                zero_command_prob=0.1)  # fmt: skip
    keys = jax.random.split(jax.random.key(3), 4000)
    draw = {}
    for prob in (0.0, 0.3):
        env = WildRobotEnv(override(EnvConfig(), base | {"turn_in_place_prob": prob}))
        draw[prob] = np.asarray(jax.jit(jax.vmap(env.sample_command))(keys))
    plain, turning = draw[0.0], draw[0.3]
    standing = ~plain.any(axis=1)
    assert 0.08 < standing.mean() < 0.12  # zero_command_prob
    in_place = (turning[:, :2] == 0).all(axis=1) & ~standing
    assert 0.3 * 0.9 - 0.03 < in_place.mean() < 0.3 * 0.9 + 0.03
    np.testing.assert_array_equal(turning[in_place, 2], plain[in_place, 2])  # same yaw rate
    np.testing.assert_array_equal(turning[~in_place], plain[~in_place])
    assert not (plain[~standing, :2] == 0).all(axis=1).any()  # prob 0: every command walks


def test_amp_features_same_online_and_offline(robot):
    env, _, _, _, _, _, traj = robot
    qpos, qvel = traj.env.data.qpos[100], traj.env.data.qvel[100]
    online = jax.jit(jax.vmap(env.amp_features))(qpos, qvel)
    chex.assert_shape(online, (NUM_ENVS, env.amp_feature_size))
    offline_fn = jax.jit(env.amp_features)  # one frame at a time, from NumPy, as for a clip
    offline = offline_fn(np.asarray(qpos[2]), np.asarray(qvel[2]))
    np.testing.assert_allclose(online[2], offline, atol=1e-5)
    # The named groups tile the features in order and hold what they say.
    groups = env.amp_feature_groups
    assert [g.start for g in groups.values()] == [0] + [g.stop for g in groups.values()][:-1]
    assert list(groups.values())[-1].stop == env.amp_feature_size
    np.testing.assert_allclose(offline[groups["joint_pos"]], qpos[2][env.ids.qpos], atol=1e-6)
    np.testing.assert_allclose(offline[groups["joint_vel"]], qvel[2][env.ids.qvel], atol=1e-6)
    np.testing.assert_allclose(offline[groups["base_height"]], qpos[2][2:3], atol=1e-6)
    # Heading frame: the features do not change when the whole robot is turned about z.
    yaw = np.pi / 3
    turned = np.asarray(qpos[2]).copy()
    w, x, y, z = turned[3:7]
    qz = np.array([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
    turned[3:7] = [
        qz[0] * w - qz[3] * z,
        qz[0] * x - qz[3] * y,
        qz[0] * y + qz[3] * x,
        qz[0] * z + qz[3] * w,
    ]
    c, s = np.cos(yaw), np.sin(yaw)
    vel = np.asarray(qvel[2]).copy()
    vel[:2] = [c * vel[0] - s * vel[1], s * vel[0] + c * vel[1]]
    np.testing.assert_allclose(offline_fn(turned, vel), offline, atol=1e-4)


def test_second_robot_model_loads_and_steps():
    cfg = EnvConfig(
        model_path=os.path.join(HERE, "assets", "mini_biped.xml"),
        actuators=("l_hip_servo", "l_knee_servo", "l_ankle_servo")
        + ("r_hip_servo", "r_knee_servo", "r_ankle_servo"),
        joints=("l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle"),
        root_body="pelvis",
        torso_body="pelvis",
        imu_site="chest_imu",
        feet_sites=("l_sole_site", "r_sole_site"),
        sole_geoms=("l_toe", "l_heel", "r_toe", "r_heel"),
        home_keyframe="stand",
        base_height_target=0.26,
        min_base_height=0.15,
        max_base_height=0.4,
        sim_dt=0.005,
    )
    env = WildRobotEnv(cfg)
    assert env.action_size == 6 and env.n_substeps == 4

    @jax.jit
    def run(key):
        step = lambda s, _: (env.step(s, jnp.zeros(6)), None)  # noqa: E731
        return jax.lax.scan(step, env.reset(key), None, 25)[0]

    state = run(jax.random.key(0))
    assert not bool(state.terminated)
    assert abs(float(state.data.qpos[2]) - 0.26) < 0.02
    chex.assert_shape(state.obs, (env.obs_size,))
    assert bool(jnp.isfinite(state.critic_obs).all())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rewrad_scales.pose": 1.0}, "unknown config key 'rewrad_scales.pose'.*reward_scales"),
        ({"reward_scales.poze": 1.0}, "unknown config key 'reward_scales.poze'.*pose"),
        ({"ctrl_dt": "fast"}, "'ctrl_dt' wants float"),
        ({"episode_length": 2.5}, "'episode_length' wants int"),
        ({"lin_vel_x": (0.0, 0.1, 0.2)}, "'lin_vel_x' wants 2 values"),
        ({"noise": 3}, "'noise' is a section"),
    ],
)
def test_bad_config_keys_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        override(EnvConfig(), overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"actuators": ("right_hip_pitch", "rigth_knee")}, "actuator 'rigth_knee' is not in"),
        ({"joints": ("right_hip_pitch", "knee")}, "2 joints configured for 9 actuators"),
        ({"feet_sites": ("left_foot", "toe")}, "site 'toe' is not in model"),
        ({"imu_site": "chest"}, "site 'chest' is not in model"),
        ({"sole_geoms": ("left_sole_front", "floor_x")}, "geom 'floor_x'"),
        ({"root_body": "torso"}, "root body 'torso' must carry"),
        ({"home_keyframe": "crouch"}, "keyframe 'crouch'"),
        ({"model_path": "assets/nope.xml"}, "model file not found: 'assets/nope.xml'"),
        ({"solver": "pgs"}, "solver 'pgs'"),
        ({"randomization.action_delay": (0, 3)}, "action_delay"),
        ({"randomization.kp_scale": (1.2, 0.8)}, "randomization.kp_scale has lo 1.2 > hi 0.8"),
        ({"ctrl_dt": 0.021}, "not a multiple of sim_dt"),
    ],
)
def test_bad_model_names_fail_before_compiling(overrides, message):
    with pytest.raises(ConfigError, match=message):
        WildRobotEnv(override(EnvConfig(), overrides))


def test_malformed_model_file_is_named(tmp_path):
    bad = tmp_path / "broken.xml"
    bad.write_text("<mujoco><worldbody><body></mujoco>")
    with pytest.raises(ConfigError, match="malformed model file '.*broken.xml'"):
        WildRobotEnv(EnvConfig(model_path=str(bad)))


def test_where_done_picks_per_env():
    done = jnp.array([True, False])
    out = _where_done(done, {"a": jnp.ones((2, 3))}, {"a": jnp.zeros((2, 3))})
    np.testing.assert_array_equal(out["a"], [[1, 1, 1], [0, 0, 0]])


def test_push_direction_and_next_push_time_are_independent(robot):
    env = robot[0]
    angle, countdown = jax.jit(jax.vmap(env.sample_push))(jax.random.split(jax.random.key(5), 4000))
    lo, hi = env.config.randomization.push_interval
    assert int(countdown.min()) >= round(lo / env.config.ctrl_dt)
    assert int(countdown.max()) <= round(hi / env.config.ctrl_dt)
    assert abs(np.corrcoef(angle, countdown)[0, 1]) < 0.1


def test_feet_air_time_and_phase_reward_values(robot):
    """Air time pays (time in the air - target) at touchdown while walking; feet_phase follows the
    gait clock: left foot up in the first half of the cycle, right foot in the second."""
    env, _, _, _, start, _, _ = robot
    c = env.config
    data, info = jax.tree.map(lambda x: x[0], (start.env.data, start.env.info))
    s = env._sense(data, info)  # noqa: SLF001
    feet = np.asarray(s["feet_pos"]).copy()
    walk = info.replace(command=jnp.array([0.3, 0.0, 0.0]))

    def terms(info, contact, heights, phase=0.0):
        feet[:, 2] = heights
        sensed = s | {"foot_contact": jnp.asarray(contact), "feet_pos": jnp.asarray(feet)}
        info = info.replace(phase=jnp.float32(phase))
        return env._reward_terms(sensed, info, jnp.zeros(env.nu), jnp.bool_(False))  # noqa: SLF001

    # Left foot in the air for 20 control steps (the first still counts as touching: it was in
    # contact the step before), then it lands.
    air = walk.replace(last_contact=jnp.array([True, True]))
    for _ in range(20):
        _, air = terms(air, [False, True], [0.03, 0.0])
    np.testing.assert_allclose(air.feet_air_time, [19 * c.ctrl_dt, 0.0], rtol=1e-5)
    landed, after = terms(air, [True, True], [0.0, 0.0])
    want = 20 * c.ctrl_dt - c.feet_air_time_target  # the landing step counts as air time
    np.testing.assert_allclose(landed["feet_air_time"], want, rtol=1e-5)
    np.testing.assert_allclose(after.feet_air_time, [0.0, 0.0])
    standing, _ = terms(air.replace(command=jnp.zeros(3)), [True, True], [0.0, 0.0])
    assert float(standing["feet_air_time"]) == 0.0

    # At phase pi/2 the left foot should be at swing_height and the right foot down.
    right, _ = terms(walk, [False, True], [c.swing_height, 0.0], phase=np.pi / 2)
    np.testing.assert_allclose(right["feet_phase"], 1.0, rtol=1e-5)
    wrong, _ = terms(walk, [True, False], [0.0, c.swing_height], phase=np.pi / 2)
    np.testing.assert_allclose(wrong["feet_phase"], np.exp(-2 * c.swing_height**2 / 0.0025))
    still, _ = terms(walk.replace(command=jnp.zeros(3)), [False, True], [c.swing_height, 0.0])
    assert float(still["feet_phase"]) == 0.0


def test_velocity_error_metrics_follow_the_base_velocity(robot):
    """Forward, lateral and yaw-rate errors are |base velocity - command| in the base frame."""
    env, _, _, _, _, _, traj = robot
    s = traj.env
    live = ~np.asarray(s.truncated | s.terminated)  # after a done the obs is the next episode's
    vel = np.asarray(s.critic_obs)[..., env.critic_layout.slice("base_lin_vel")]
    rot = np.asarray(s.data.xmat)[:, :, env.ids.root]  # world from base
    yaw_rate = np.einsum("tnji,tnj->tni", rot, np.asarray(s.data.cvel)[:, :, env.ids.root, :3])[
        ..., 2
    ]
    cmd = np.asarray(s.info.command)
    want = {"forward_velocity_error": np.abs(vel[..., 0] - cmd[..., 0]),
            "lateral_velocity_error": np.abs(vel[..., 1] - cmd[..., 1]),
            "yaw_rate_error": np.abs(yaw_rate - cmd[..., 2])}  # fmt: skip
    for name, value in want.items():
        got = np.asarray(s.metrics[name])
        np.testing.assert_allclose(got[live], value[live], atol=1e-4, err_msg=name)
        assert got[live].max() > 1e-4, name  # the robot sways: not trivially zero


def test_tracking_rewards_use_their_own_sharpness(robot):
    """exp(-|cmd_xy - v_xy|^2 / tracking_sigma) and exp(-(cmd_yaw - w_z)^2 / yaw_tracking_sigma);
    the ang_vel_error cost is (cmd_yaw - w_z)^2 itself; torso_twist is the squared yaw rate of the
    IMU's body against the base."""
    env, _, _, _, start, _, _ = robot
    sharp = WildRobotEnv(override(env.config, {"tracking_sigma": 0.03, "yaw_tracking_sigma": 0.25}))
    data, info = jax.tree.map(lambda x: x[0], (start.env.data, start.env.info))
    s = sharp._sense(data, info)  # noqa: SLF001
    s = s | {"base_lin_vel": jnp.array([0.2, 0.1, 0.0]), "base_ang_vel": jnp.array([0.0, 0.0, 0.5])}
    info = info.replace(command=jnp.array([0.3, 0.0, 1.0]))
    terms, _ = sharp._reward_terms(s, info, jnp.zeros(env.nu), jnp.bool_(False))  # noqa: SLF001
    np.testing.assert_allclose(
        terms["tracking_lin_vel"], np.exp(-(0.1**2 + 0.1**2) / 0.03), rtol=1e-5
    )
    np.testing.assert_allclose(terms["tracking_ang_vel"], np.exp(-(0.5**2) / 0.25), rtol=1e-5)
    np.testing.assert_allclose(terms["ang_vel_error"], 0.5**2, rtol=1e-5)
    # The waist turning at 0.7 rad/s on a base yawing at 0.2 rad/s: the torso twists at 0.7.
    # (Body velocities from MuJoCo's C forward pass: an unjitted mjx.forward takes half a minute.)
    waist = env.config.actuators.index("waist_yaw")
    d = mujoco.MjData(env.mj_model)
    d.qpos[:] = np.asarray(data.qpos)
    d.qvel[5], d.qvel[env.ids.qvel[waist]] = 0.2, 0.7
    mujoco.mj_forward(env.mj_model, d)
    moving = data.replace(
        qvel=jnp.asarray(d.qvel, jnp.float32), cvel=jnp.asarray(d.cvel, jnp.float32)
    )
    s = sharp._sense(moving, info)  # noqa: SLF001
    terms, _ = sharp._reward_terms(s, info, jnp.zeros(env.nu), jnp.bool_(False))  # noqa: SLF001
    np.testing.assert_allclose(terms["torso_twist"], 0.7**2, rtol=1e-3)


def test_feet_tilt_is_the_soles_tilt_of_feet_in_contact(robot):
    """feet_tilt sums sin^2 of each contacting sole's tilt (its foot site's z axis against the
    vertical): a left ankle pitched by 0.2 rad tilts the left sole by 0.2 rad; a foot in the air
    does not count."""
    env, _, _, _, start, _, _ = robot
    data, info = jax.tree.map(lambda x: x[0], (start.env.data, start.env.info))
    d = mujoco.MjData(env.mj_model)
    d.qpos[:] = np.asarray(env.home_qpos)
    d.qpos[env.mj_model.jnt_qposadr[env.mj_model.joint("left_ankle_pitch").id]] += 0.2
    mujoco.mj_kinematics(env.mj_model, d)
    tilted = data.replace(site_xmat=jnp.asarray(d.site_xmat.reshape(-1, 3, 3), jnp.float32))
    s = env._sense(tilted, info)  # noqa: SLF001
    np.testing.assert_allclose(s["feet_tilt"], [np.sin(0.2) ** 2, 0.0], atol=1e-6)

    def cost(contact):
        sensed = s | {"foot_contact": jnp.asarray(contact)}
        terms, _ = env._reward_terms(sensed, info, jnp.zeros(env.nu), jnp.bool_(False))  # noqa: SLF001
        return float(terms["feet_tilt"])

    np.testing.assert_allclose(cost([True, True]), np.sin(0.2) ** 2, rtol=1e-5)
    assert cost([False, True]) < 1e-12  # the flat right foot alone


def test_mirror_matches_a_mirrored_pose(robot):
    """The actor observation of a state reflected left-right (root, joints, velocities, command,
    gait clock, last action) is env.mirror()'s reflection of the state's observation; a
    lopsided home pose is named."""
    env, start = robot[0], robot[4]
    noise = {f"noise.{name}": 0.0 for name in ("gravity", "gyro", "joint_pos", "joint_vel")}
    quiet = WildRobotEnv(override(env.config, noise))
    obs_m, act_m = quiet.mirror()
    ids, rng = quiet.ids, np.random.default_rng(0)
    qpos = np.asarray(quiet.home_qpos, np.float64)
    qpos[:3] = [0.1, 0.05, 0.45]
    qpos[3:7] = np.array([1.0, 0.1, -0.05, 0.2]) / np.linalg.norm([1.0, 0.1, -0.05, 0.2])
    qpos[ids.qpos] += rng.uniform(-0.2, 0.2, quiet.nu)
    qvel = rng.normal(0.0, 0.5, quiet.mj_model.nv)
    reflect = np.diag([1.0, -1.0, 1.0])
    mirror_qpos, mirror_qvel = qpos.copy(), qvel.copy()
    mirror_qpos[:3] = reflect @ qpos[:3]
    mirror_qpos[3:7] = qpos[3:7] * [1.0, -1.0, 1.0, -1.0]  # rotate about -reflect @ axis
    mirror_qpos[ids.qpos] = act_m @ qpos[ids.qpos]
    mirror_qvel[:3] = reflect @ qvel[:3]
    mirror_qvel[3:6] = -reflect @ qvel[3:6]  # body-frame angular velocity: an axial vector
    mirror_qvel[ids.qvel] = act_m @ qvel[ids.qvel]
    info = jax.tree.map(lambda x: x[0], start.env.info)
    last_action = rng.uniform(-1.0, 1.0, quiet.nu)
    info = info.replace(
        params=info.params.replace(joint_offset=jnp.zeros(quiet.nu)),
        command=jnp.array([0.3, 0.1, 0.5]),
        phase=jnp.float32(0.7),
        last_action=jnp.asarray(last_action, jnp.float32),
    )
    mirror_info = info.replace(
        command=jnp.array([0.3, -0.1, -0.5]),
        phase=jnp.float32(0.7 + np.pi),
        last_action=jnp.asarray(act_m @ last_action, jnp.float32),
    )

    def observe(qpos, qvel, info):
        data = jax.tree.map(lambda x: x[0], quiet.forward_states(qpos[None], qvel[None]))
        sensed = quiet._sense(data, info)  # noqa: SLF001
        return np.asarray(quiet._observe(sensed, info, jax.random.key(0))[0])  # noqa: SLF001

    obs, mirrored = observe(qpos, qvel, info), observe(mirror_qpos, mirror_qvel, mirror_info)
    assert not np.allclose(mirrored, obs, atol=1e-2)  # a lopsided state: the test can fail
    np.testing.assert_allclose(mirrored, obs_m @ obs, atol=1e-4)

    lopsided = WildRobotEnv.__new__(WildRobotEnv)
    lopsided.__dict__.update(quiet.__dict__, home_joints=quiet.home_joints.at[1].add(0.1))
    with pytest.raises(ConfigError, match="home keyframe 'home' is lopsided"):
        lopsided.mirror()


def test_torque_limit_counts_servos_at_their_forcerange(robot):
    """torque_limit counts the servos whose force is within 1% of either end of their forcerange
    (play.py's definition of "at its torque limit"); servos without a range never count."""
    env, _, _, _, start, _, _ = robot
    data, info = jax.tree.map(lambda x: x[0], (start.env.data, start.env.info))
    s = env._sense(data, info)  # noqa: SLF001
    hi = env.mj_model.actuator_forcerange[env.ids.actuators, 1]
    force = np.zeros(env.mj_model.nu, np.float32)
    force[env.ids.actuators[:3]] = [hi[0], -0.995 * hi[1], 0.98 * hi[2]]  # at, at, just under

    def count(force):
        sensed = s | {"actuator_force": jnp.asarray(force)}
        terms, _ = env._reward_terms(sensed, info, jnp.zeros(env.nu), jnp.bool_(False))  # noqa: SLF001
        return float(terms["torque_limit"])

    assert count(force) == 2.0
    assert count(np.zeros_like(force)) == 0.0
    model = copy.deepcopy(env.mj_model)
    np.testing.assert_array_equal(force_limits(model, env.ids.actuators), [-hi, hi])
    model.actuator_forcelimited[env.ids.actuators[0]] = False
    lo, hi2 = force_limits(model, env.ids.actuators)
    assert np.isinf([lo[0], hi2[0]]).all() and np.array_equal(hi2[1:], hi[1:])
