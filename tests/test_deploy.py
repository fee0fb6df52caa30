"""The exported policy (NumPy and ONNX) matches the JAX policy, and the robot-side observation
built from plain-MuJoCo sensor readings matches the training environment's."""

import dataclasses
import functools
import importlib.util
import os
import sys

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import deploy
import driver
import export
import play
import ppo
from config import override
from deploy import Controller, gravity_in_sensor_frame
from env import EnvConfig, WildRobotEnv
from play import GRID, SETTLE_STEPS, Servos, evaluate_mujoco, summarize
from sim2sim import Hold, MujocoRobot, foot_slip, heading_joints, run_mujoco_episode
from wrappers import normalizer_init, normalizer_scale, normalizer_update

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISELESS = override(
    EnvConfig(),
    {
        "noise": {"gravity": 0.0, "gyro": 0.0, "joint_pos": 0.0, "joint_vel": 0.0},
        "randomization.joint_offset": (0.0, 0.0),
        "randomization.action_delay": (0, 0),
    },
)


@pytest.fixture(scope="module")
def saved_policy(tmp_path_factory):
    """A randomly initialized actor with a non-trivial normalizer, saved and exported."""
    config = ppo.load_config(os.path.join(ROOT, "configs", "smoke.toml"))
    env = WildRobotEnv(config.env)
    actor = ppo.Actor(config.actor_hidden, env.action_size, config.activation)
    params = actor.init(jax.random.key(0), jnp.zeros(env.obs_size))
    # Make the output layer matter (its init is tiny) so the comparison is not trivially zero.
    params = jax.tree.map(lambda x: x * 30 if x.ndim == 2 and x.shape[1] == 9 else x, params)
    rng = np.random.default_rng(0)
    data = rng.normal(0.5, 2.0, (500, env.obs_size)).astype(np.float32)
    # Lateral and yaw commands never vary in training (as for the shipped policy).
    data[:, env.actor_layout.slice("command")][:, 1:] = 0.0
    stats = normalizer_update(normalizer_init(env.obs_size), jnp.asarray(data))
    path = str(tmp_path_factory.mktemp("policy") / "policy.msgpack")
    driver.save_policy(path, config, params, stats)
    out = path.replace(".msgpack", "")
    loaded = ppo.load_policy_params(path)
    export.write_npz(out + ".npz", *loaded)
    return config, loaded, out, data


def test_numpy_policy_matches_jax(saved_policy):
    config, loaded, out, data = saved_policy
    jax_policy = jax.jit(jax.vmap(ppo.make_policy(*loaded)))
    obs = data[:64] + np.random.default_rng(1).normal(0, 1, data[:64].shape).astype(np.float32)
    want = np.asarray(jax_policy(obs))
    ctrl = Controller.load(out + ".npz")
    got = np.stack([ctrl.policy(o) for o in obs])
    assert np.abs(want).max() > 0.1, "the policy output is too small for a meaningful check"
    np.testing.assert_array_less(np.abs(got - want), 1e-5)


@pytest.fixture(scope="module")
def onnx_policy(saved_policy):
    """The saved policy exported to ONNX, as a function of a batch of observations."""
    ort = pytest.importorskip("onnxruntime")
    _, loaded, out, _ = saved_policy
    export.write_onnx(out + ".onnx", *loaded)
    session = ort.InferenceSession(out + ".onnx")
    return lambda obs: session.run(["action"], {"obs": np.asarray(obs, np.float32)})[0]


def test_onnx_policy_matches_jax(saved_policy, onnx_policy):
    config, loaded, out, data = saved_policy
    obs = data[:64]
    want = np.asarray(jax.jit(jax.vmap(ppo.make_policy(*loaded)))(obs))
    np.testing.assert_array_less(np.abs(onnx_policy(obs) - want), 1e-5)


def test_an_input_constant_in_training_passes_through_every_export(saved_policy, onnx_policy):
    """A 0.001 rad/s yaw command, never seen in training, barely moves the action in JAX, in the
    NumPy controller and in ONNX alike (dividing by a tiny std would make it an input of 10)."""
    config, loaded, out, data = saved_policy
    yaw = WildRobotEnv(config.env).actor_layout.slice("command").start + 2
    obs = data[:16].copy()
    nudged = obs.copy()
    nudged[:, yaw] += 0.001
    numpy_policy = Controller.load(out + ".npz").policy
    for name, policy in [
        ("jax", jax.jit(jax.vmap(ppo.make_policy(*loaded)))),
        ("numpy", lambda x: np.stack([numpy_policy(o) for o in x])),
        ("onnx", onnx_policy),
    ]:
        change = np.abs(np.asarray(policy(nudged)) - np.asarray(policy(obs))).max()
        assert change < 0.01, (name, change)
    scale = Controller.load(out + ".npz").policy.std
    assert scale[yaw] == 1.0 and scale[yaw - 1] == 1.0 and scale[0] > 1.5


def test_load_policy_runs_in_a_few_lines(saved_policy):
    _, loaded, out, data = saved_policy
    env_config, policy = ppo.load_policy(out + ".msgpack")
    assert env_config == loaded[0].env
    np.testing.assert_allclose(policy(data[0]), ppo.make_policy(*loaded)(data[0]), atol=1e-6)


def test_gravity_from_quaternion():
    np.testing.assert_allclose(gravity_in_sensor_frame([1, 0, 0, 0]), [0, 0, -1])
    # Pitched forward by 90 degrees about y: gravity points along the sensor's +x.
    q = [np.cos(np.pi / 4), 0, np.sin(np.pi / 4), 0]
    np.testing.assert_allclose(gravity_in_sensor_frame(q), [1, 0, 0], atol=1e-12)


def test_npz_holds_what_the_robot_needs(saved_policy):
    """export.write_npz's metadata: the config's and the model's values, the normalizer's rule."""
    config, (_, actor_vars, stats), out, _ = saved_policy
    env = WildRobotEnv(config.env)
    f = np.load(out + ".npz")
    assert [str(n) for n in f["obs_names"]] == [n for n, _ in env.actor_layout.pieces]
    assert list(f["obs_sizes"]) == [s for _, s in env.actor_layout.pieces]
    assert [str(a) for a in f["actuators"]] == list(config.env.actuators)
    assert str(f["activation"]) == config.activation
    for key, want in [
        ("home", env.home_joints),
        ("joint_lo", env.joint_lo),
        ("joint_hi", env.joint_hi),
        ("obs_mean", stats.mean),
        ("obs_std", normalizer_scale(stats)),
        ("action_scale", config.env.action_scale),
        ("action_filter_alpha", config.env.action_filter_alpha),
        ("ctrl_dt", config.env.ctrl_dt),
        ("gait_frequency", config.env.gait_frequency),
    ]:
        np.testing.assert_allclose(f[key], np.asarray(want), rtol=1e-6, err_msg=key)
    layers = export.actor_layers(actor_vars)
    assert int(f["num_layers"]) == len(layers) == len(config.actor_hidden) + 1
    for i, (kernel, bias) in enumerate(layers):
        np.testing.assert_array_equal(f[f"kernel_{i}"], kernel)
        np.testing.assert_array_equal(f[f"bias_{i}"], bias)


# A low-pass filter and one step of servo latency: the action pipeline the robot runs.
PIPELINE = override(NOISELESS, {"action_filter_alpha": 0.6, "randomization.action_delay": (1, 1)})


def test_robot_side_controller_matches_the_env_with_filter_and_delay(saved_policy, tmp_path):
    """Same physical state: env.step's actor obs == deploy.Controller.observation of the sensors;
    the same actions through the controller's filter and the simulated robot's latency reach the
    servos as env.step's filter and delay send them (delay 1: first the home pose, then the first
    action, filtered)."""
    config, (_, actor_vars, stats), _, _ = saved_policy
    env = WildRobotEnv(PIPELINE)
    actions = np.random.default_rng(2).uniform(-1, 1, (4, env.action_size)).astype(np.float32)

    @jax.jit
    def run(key):
        step = lambda s, a: (env.step(s, a),) * 2  # noqa: E731
        return jax.lax.scan(step, env.reset(key), actions)[1]

    states = run(jax.random.key(0))
    env_ctrl = np.asarray(states.data.ctrl[:, env.ids.actuators])

    # By hand: filtered_k = 0.6 a_k + 0.4 filtered_(k-1); the servos get it one step later.
    home = np.clip(np.asarray(env.home_joints), env.joint_lo, env.joint_hi)
    filtered, want = np.zeros(env.action_size), [home]
    for a in actions[:-1]:
        filtered = 0.6 * a + 0.4 * filtered
        want.append(np.clip(env.home_joints + PIPELINE.action_scale * filtered, env.joint_lo,
                            env.joint_hi))  # fmt: skip
    np.testing.assert_allclose(env_ctrl, np.stack(want), atol=1e-6)

    # The controller from the exported file, driven by the same actions, through MujocoRobot.
    path = str(tmp_path / "pipeline.npz")
    export.write_npz(path, dataclasses.replace(config, env=PIPELINE), actor_vars, stats)
    ctrl = Controller.load(path)
    robot = MujocoRobot(PIPELINE, noise=False)
    assert robot.action_delay == 1
    robot.reset()
    queue = iter(actions)
    ctrl.policy = lambda _: next(queue)
    for k in range(len(actions)):
        robot.apply(ctrl.step(*robot.sensors(), command=np.zeros(3)))
        np.testing.assert_allclose(robot.data.ctrl[robot.actuators], env_ctrl[k], atol=1e-6)

    # The observation of the last state, rebuilt in MuJoCo. After a step, MuJoCo's (and MJX's)
    # positions and velocities are new but the kinematics were computed before the last
    # integration; the robot-side code reads the same. Semi-implicit Euler made
    # qvel = qvel0 + dt * qacc and qpos = qpos0 + dt * qvel.
    state = jax.tree.map(lambda x: x[-1], states)
    m, d = robot.model, robot.data
    dt = PIPELINE.sim_dt
    d.qvel[:] = np.asarray(state.data.qvel) - dt * np.asarray(state.data.qacc)
    d.qpos[:] = np.asarray(state.data.qpos)
    mujoco.mj_integratePos(m, d.qpos, np.asarray(state.data.qvel, np.float64), -dt)
    mujoco.mj_forward(m, d)
    d.qpos[:] = np.asarray(state.data.qpos)  # the encoders read the new joint positions
    d.qvel[:] = np.asarray(state.data.qvel)
    ctrl.phase = float(state.info.phase)
    assert np.allclose(ctrl.last_action, actions[-1])
    obs = ctrl.observation(*robot.sensors(), command=np.asarray(state.info.command))
    np.testing.assert_allclose(obs, np.asarray(state.obs), atol=2e-4)


def shipped(name: str) -> tuple[ppo.PPOConfig, Controller]:
    """The config of a policy in policies/ and its robot-side controller (.npz)."""
    config = ppo.load_policy_params(os.path.join(ROOT, "policies", f"{name}.msgpack"))[0]
    return config, Controller.load(os.path.join(ROOT, "policies", f"{name}.npz"))


def test_shipped_policy_walks_in_plain_mujoco():
    """The shipped .npz, run as on the robot, still walks: guards the observation layout, the
    controller and the model against changes that would silently break the released policy."""
    config, ctrl = shipped("wildrobot_walk")
    rows = evaluate_mujoco(config.env, ctrl, GRID, episodes=2)
    for row in rows:  # no falls; no row far off (the worst, 0.6 m/s forward: 0.097 when shipped)
        assert row["fall_rate"] == 0.0, row
        assert row["vel_err"] < 0.15 and row["lat_err"] < 0.15, row
        if row["command"][2] == 0.0 and row["command"][:2] != (0.0, 0.0):
            assert row["at_limit"] < 0.6, row  # 7-33% walking without turning when shipped
    # The linear target is on the grid's mean: <= 0.1 m/s (0.054 forward when shipped).
    assert np.mean([[row["vel_err"], row["lat_err"]] for row in rows], axis=0).max() <= 0.1
    # It turns: the grid's mean yaw-rate error is 0.27 rad/s for the shipped policy, about 0.7
    # for one that ignores the yaw command.
    assert np.mean([row["yaw_err"] for row in rows]) < 0.4


def test_shipped_amp_policy_walks_in_plain_mujoco():
    """The shipped AMP policy's .npz, run as on the robot, walks forward 0-0.5 m/s (its targets:
    error <= 0.1 m/s, no falls; measured 0.057 m/s over 96 episodes when shipped)."""
    config, ctrl = shipped("wildrobot_amp")
    rows = evaluate_mujoco(config.env, ctrl, [0.0, 0.3, 0.5], episodes=2)
    for row in rows:
        assert row["fall_rate"] == 0.0, row
        assert row["vel_err"] < 0.1, row


def test_activation_tables_agree():
    """deploy.py's NumPy activations are the trainer's, name for name and value for value."""
    assert set(deploy.ACTIVATIONS) == set(ppo.ACTIVATIONS)
    x = np.linspace(-5, 5, 101, dtype=np.float32)
    for name, fn in ppo.ACTIVATIONS.items():
        np.testing.assert_allclose(deploy.ACTIVATIONS[name](x), fn(jnp.asarray(x)), atol=1e-6)


def test_foot_slip_one_definition_for_any_soles_per_foot():
    """sim2sim.foot_slip, used by both tables: mean horizontal speed of the feet with a sole in
    contact, from NumPy or JAX, two soles per foot (WildRobot) or one (a box per foot)."""
    feet_vel = np.array([[0.3, 0.4, 9.0, 1.0, 0.0, -5.0]])  # left 0.5 m/s, right 1 m/s; z ignored
    two_soles = np.array([[True, False, False, False]])  # left heel only
    one_sole = np.array([[True, True]])
    np.testing.assert_allclose(foot_slip(feet_vel, two_soles, 2), [0.5])
    np.testing.assert_allclose(foot_slip(feet_vel, one_sole, 2), [0.75])
    np.testing.assert_allclose(foot_slip(feet_vel, np.zeros((1, 2), bool), 2), [0.0])
    np.testing.assert_allclose(jax.jit(foot_slip, static_argnums=2)(feet_vel, one_sole, 2), [0.75])


def test_play_measures_on_hand_values():
    """Heading drift, torque-limit share, left/right balance and errors, by their definitions."""
    steps, dt = 500, 0.02  # 10 s
    servos = Servos(("left_knee", "right_knee", "waist"), np.array([4.0, 4.0, 2.0]))
    force = np.zeros((steps, 4, 3))  # 2 commands x 2 episodes, 3 servos
    force[:, :, 0], force[:, :, 1] = 2.0, 1.0  # the left knee works twice as hard
    force[:100, :, 2] = -2.0  # the waist at its (negative) limit for 1/5 of the time
    turn = np.linspace(0.0, np.radians(30.0), steps)  # 30 degrees in 10 s, wrapping past pi
    out = {
        "alive": np.ones((steps, 4), bool),
        "vel_err": np.full((steps, 4), 0.1),
        "lat_err": np.full((steps, 4), 0.2),
        "yaw_err": np.full((steps, 4), 0.3),
        "twist": np.full((steps, 4), 0.4),
        "heading": np.angle(np.exp(1j * (np.pi - 0.1 + turn)))[:, None].repeat(4, 1),
        "force": force,
        "joints": np.zeros((steps, 4, 3)),
        "power": np.ones((steps, 4)),
        "slip": np.zeros((steps, 4)),
    }
    t = np.arange(steps) * dt
    out["joints"][:, :, 0] = 0.3 * np.sin(2 * np.pi * 1.5 * t)[:, None]  # left swings 0.3 rad
    out["joints"][:, :, 1] = 0.5 + 0.1 * np.sin(2 * np.pi * 1.5 * t)[:, None]  # right 0.1 rad
    out["joints"][:SETTLE_STEPS, :, 1] = 9.0  # before the last 5 s: not counted
    out["twist"][:SETTLE_STEPS] = 9.0  # before the last 5 s: not counted
    out["alive"][SETTLE_STEPS + 10 :, 2] = False  # the third episode (second command) falls
    out["heading"][SETTLE_STEPS:, 2] = 0.0  # ... and stops turning: none of its rates may count
    rows = summarize(out, [(0.3, 0.0, 0.0), (0.0, 0.0, 0.5)], 2, servos, dt)
    first, second = rows
    assert first["drift_deg"] == pytest.approx(30.0, rel=1e-6)
    assert first["at_limit"] == pytest.approx(0.2) and first["at_limit_servo"] == "waist"
    assert first["left_right"] == pytest.approx(2.0)
    assert first["swing_left_right"] == pytest.approx(3.0, rel=1e-3)  # standard deviations
    assert (first["vel_err"], first["lat_err"], first["yaw_err"]) == pytest.approx((0.1, 0.2, 0.3))
    assert first["twist"] == pytest.approx(0.4)
    assert first["fall_rate"] == 0.0 and second["fall_rate"] == 0.5
    rate = np.radians(30.0) / ((steps - 1) * dt)  # the heading turns at a constant rate
    assert first["net_yaw_err"] == pytest.approx(rate, rel=1e-6)
    assert second["net_yaw_err"] == pytest.approx(0.5 - rate, rel=1e-6)  # the survivor only
    assert np.isnan(second["drift_deg"])  # a turning command has no drift to measure
    out["alive"][:, 3] = False  # no episode of the second command survives: no error to report
    out["alive"][:, 2] = False
    assert np.isnan(summarize(out, [(0.3, 0, 0), (0, 0, 0.5)], 2, servos, dt)[1]["vel_err"])


def test_mujoco_robot_reads_base_velocity_in_its_own_frame():
    """Forward, lateral and yaw rate of the root as env.py defines them (base frame), and the
    chest's twist against it."""
    robot = MujocoRobot(NOISELESS, noise=False)
    robot.reset()
    yaw = 0.5
    robot.data.qpos[3:7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]  # turned about z
    world = np.array([np.cos(yaw), np.sin(yaw)]) * 0.3 + np.array([-np.sin(yaw), np.cos(yaw)]) * 0.1
    robot.data.qvel[:2] = world  # 0.3 m/s forward and 0.1 m/s to the left of the turned body
    robot.data.qvel[5] = 0.7  # free joint angular velocity: body frame
    robot.data.qvel[robot.vadr[NOISELESS.actuators.index("waist_yaw")]] = 0.4
    mujoco.mj_forward(robot.model, robot.data)
    np.testing.assert_allclose(robot.base_velocity(), [0.3, 0.1, 0.7], atol=1e-6)
    assert robot.heading() == pytest.approx(yaw)
    assert robot.twist_rate() == pytest.approx(0.4)  # the chest turns on the waist, not the root


def test_mujoco_pushes_kick_the_root_at_their_interval():
    """play.py's pushes: a kick of the given speed every n control steps, as env.py pushes."""
    config, ctrl = shipped("wildrobot_walk")
    robot = MujocoRobot(config.env, noise=False)
    standing = (0.0, 0.0, 0.0)
    calm = run_mujoco_episode(robot, ctrl, standing, 0.0)
    pushed = run_mujoco_episode(
        robot, ctrl, standing, 0.0, push=(0.4, 100, np.random.default_rng(0))
    )
    speed = {k: np.hypot(ep["vel"][:300], ep["lat_err"][:300]) for k, ep in
             (("calm", calm), ("pushed", pushed))}  # fmt: skip
    assert speed["calm"].max() < 0.15
    np.testing.assert_allclose(speed["pushed"][:99], speed["calm"][:99])  # nothing before the push
    for step in (99, 199, 299):  # each kick shows in the step it lands in
        assert 0.3 < speed["pushed"][step] < 0.5, (step, speed["pushed"][step - 1 : step + 2])


def test_plain_mujoco_floor_friction_follows_a_fixed_config_range():
    """`--friction`: a zero-width floor_friction range sets every colliding geom; else, the XML."""
    from sim2sim import mujoco_model  # noqa: PLC0415

    own = mujoco_model(EnvConfig())
    slippery = mujoco_model(override(EnvConfig(), {"randomization.floor_friction": (0.4, 0.4)}))
    colliding = np.nonzero(own.geom_contype | own.geom_conaffinity)[0]
    np.testing.assert_array_equal(slippery.geom_friction[colliding, 0], 0.4)
    assert not np.allclose(own.geom_friction[colliding, 0], 0.4)
    np.testing.assert_array_equal(slippery.geom_friction[:, 1:], own.geom_friction[:, 1:])


def test_heading_hold_rate_on_hand_values():
    """The yaw-rate command from a heading error: gain, wrap at +-pi, lead and rate limits."""
    rate = functools.partial(deploy.heading_hold_rate, dt=0.02, gain=2.0, max_rate=1.0,
                             max_lead=0.5)  # fmt: skip
    target, cmd = rate(np.float64(0.0), 0.1, 0.0)  # turned 0.1 rad left of the target: turn back
    assert (target, cmd) == pytest.approx((0.0, -0.2))
    # Across the wrap: the target is 0.1 rad left of the heading, not 2 pi - 0.1 right of it.
    target, cmd = rate(np.float64(np.pi - 0.05), -np.pi + 0.05, 0.0)
    assert cmd == pytest.approx(-0.2) and np.cos(target - (np.pi - 0.05)) == pytest.approx(1.0)
    # The joystick turns the target at its rate; the command is that rate plus the correction.
    target, cmd = rate(np.float64(0.0), 0.0, 0.5)
    assert (target, cmd) == pytest.approx((0.01, 0.52))
    # A robot that lags far behind: the target leads by max_lead at most; the rate stays in range.
    target, cmd = rate(np.float64(2.0), 0.0, 0.5)
    assert (target, cmd) == pytest.approx((0.5, 1.0))
    jitted = jax.jit(deploy.heading_hold_rate, static_argnums=(3, 4, 5, 6))  # the MJX evaluation's
    args = (jnp.array([0.0, np.pi - 0.05]), jnp.array([0.1, -np.pi + 0.05]), jnp.zeros(2))
    np.testing.assert_allclose(jitted(*args, 0.02, 2.0, 1.0, 0.5)[1], [-0.2, -0.2], atol=1e-5)


def test_heading_hold_reads_the_legs_heading_from_the_imu_and_the_waist():
    """HeadingHold's heading is the IMU's yaw (as sim2sim.heading reads it) minus the waist angle;
    sim2sim.heading_joints finds WildRobot's waist_yaw, and a robot without one has none."""
    robot = MujocoRobot(NOISELESS, noise=False)
    robot.reset()
    waist = list(NOISELESS.actuators).index("waist_yaw")
    assert heading_joints(NOISELESS) == (waist,)
    yaw, twist = 0.8, 0.3
    robot.data.qpos[3:7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
    robot.data.qpos[robot.qadr[waist]] = twist
    mujoco.mj_forward(robot.model, robot.data)
    quat, _, q, _ = robot.sensors()
    hold = deploy.HeadingHold(0.02, yaw_joints=[waist])
    assert deploy.yaw_of(quat) == pytest.approx(yaw + twist, abs=1e-9)
    assert hold.heading(quat, q) == pytest.approx(robot.heading(), abs=1e-9)
    robot.data.qpos[3:7] = [np.cos(yaw / 2), 0.05, 0.02, np.sin(yaw / 2)]  # a little tilted too
    mujoco.mj_forward(robot.model, robot.data)
    quat, _, q, _ = robot.sensors()
    assert hold.heading(quat, q) == pytest.approx(robot.heading(), abs=0.01)
    hold.reset(quat, q)
    np.testing.assert_allclose(hold(quat, q, (0.3, 0.1, 0.0)), [0.3, 0.1, 0.0], atol=1e-12)
    legs_only = override(NOISELESS, {"imu_site": "left_foot"})  # a site below no vertical joint
    assert heading_joints(legs_only) == ()


def test_heading_hold_keeps_the_shipped_policy_on_its_line():
    """Stepping sideways at a zero yaw command the shipped policy turns tens of degrees in 10 s;
    steering a heading through the robot-side HeadingHold (as play.py --heading-hold runs it)
    keeps it within the issue's 10 degrees per 10 s."""
    config, ctrl = shipped("wildrobot_walk")
    sideways = [(0.0, 0.3, 0.0)]
    plain = evaluate_mujoco(config.env, ctrl, sideways, episodes=2)[0]
    held = evaluate_mujoco(
        config.env, ctrl, sideways, episodes=2, hold=Hold(4.0, heading_joints(config.env))
    )[0]
    assert plain["drift_deg"] > 20.0, plain  # 28 degrees when shipped
    assert held["drift_deg"] < 10.0, (plain, held)  # 2.8 when shipped
    assert held["fall_rate"] == 0.0


def test_heading_hold_past_the_training_range_turns_the_shipped_policy_in_place():
    """Asked for 1 rad/s right, the shipped policy turns at about 0.4; a heading hold that may
    command up to 1.5 rad/s (past the training range) brings its heading round with the joystick."""
    config, ctrl = shipped("wildrobot_walk")
    right = [(0.0, 0.0, -1.0)]
    joints = heading_joints(config.env)
    capped = evaluate_mujoco(config.env, ctrl, right, episodes=2, hold=Hold(4.0, joints))[0]
    wider = evaluate_mujoco(config.env, ctrl, right, episodes=2, hold=Hold(4.0, joints, 1.5))[0]
    assert capped["net_yaw_err"] > 0.4, capped  # 0.64 over 8 episodes when shipped
    assert wider["net_yaw_err"] < 0.3, wider  # 0.13
    assert wider["fall_rate"] == 0.0


@pytest.mark.parametrize("flags, max_rate", [([], 1.0), (["--max-rate", "1.5"], 1.5)])
def test_play_and_robustness_hand_the_heading_hold_its_rate_limit(monkeypatch, flags, max_rate):
    """--heading-hold GAIN [--max-rate R] reaches the evaluations as Hold(GAIN, waist, R)."""
    policy = os.path.join(ROOT, "policies", "wildrobot_walk.msgpack")
    spec = importlib.util.spec_from_file_location("robustness", f"{ROOT}/benchmarks/robustness.py")
    robustness = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "robustness", robustness)  # its dataclasses look it up
    spec.loader.exec_module(robustness)
    row = dict(fall_rate=0.0, vel_err=0.0, lat_err=0.0, yaw_err=0.0, drift_deg=0.0, at_limit=0.0,
               at_limit_servo="-")  # fmt: skip
    holds = []
    monkeypatch.setattr(play, "evaluate_mujoco", lambda *a, hold: holds.append(hold) or [])
    monkeypatch.setattr(play, "print_table", lambda *a: None)
    monkeypatch.setattr(robustness, "run_condition", lambda *a: holds.append(a[-1]) or row)
    play.main([policy, "--skip", "jax", "--heading-hold", "4", *flags])
    robustness.main([policy, "--heading-hold", "4", "--only", "nominal", *flags])
    waist = (list(EnvConfig().actuators).index("waist_yaw"),)
    assert holds == [Hold(4.0, waist, max_rate)] * 2


def test_play_sets_env_fields_for_both_evaluations(monkeypatch):
    """--set KEY=VALUE changes the policy's env config before either simulator sees it."""
    policy = os.path.join(ROOT, "policies", "wildrobot_walk.msgpack")
    seen = []
    monkeypatch.setattr(play, "evaluate_jax", lambda config, *a, **k: seen.append(config) or [])
    monkeypatch.setattr(play, "evaluate_mujoco", lambda config, *a, **k: seen.append(config) or [])
    monkeypatch.setattr(play, "print_table", lambda *a: None)
    changes = ["randomization.push_velocity=0.2,0.3", "randomization.push_interval=4,5"]
    play.main([policy, "--set", changes[0], "--set", changes[1]])
    assert [c.randomization.push_velocity for c in seen] == [(0.2, 0.3)] * 2
    assert [c.randomization.push_interval for c in seen] == [(4.0, 5.0)] * 2
    with pytest.raises(SystemExit, match="unknown config key 'randomization.push_velcity'"):
        play.main([policy, "--set", "randomization.push_velcity=0.1"])
    with pytest.raises(SystemExit, match="push_velocity has lo 0.3 > hi 0.2"):
        play.main([policy, "--set", "randomization.push_velocity=0.3,0.2"])


def test_play_takes_negative_commands(monkeypatch):
    """Backwards, rightwards and clockwise commands are values on the command line, not options
    argparse does not know."""
    policy = os.path.join(ROOT, "policies", "wildrobot_walk.msgpack")
    seen = []
    monkeypatch.setattr(
        play, "evaluate_mujoco", lambda config, ctrl, cmds, *a, **k: seen.append(cmds) or []
    )
    monkeypatch.setattr(play, "print_table", lambda *a: None)
    play.main([policy, "--skip", "jax", "--commands", "-0.3,0,0", "0.3", "-0.2", "0,-0.2,-1"])
    assert seen == [[(-0.3, 0.0, 0.0), 0.3, -0.2, (0.0, -0.2, -1.0)]]


@pytest.mark.parametrize("rate", ["0", "-1", "nan"])
def test_play_refuses_a_heading_hold_rate_limit_that_is_not_positive(rate, capsys):
    policy = os.path.join(ROOT, "policies", "wildrobot_walk.msgpack")
    with pytest.raises(SystemExit):
        play.main([policy, "--skip", "jax", "--heading-hold", "4", "--max-rate", rate])
    assert f"--max-rate wants a positive yaw rate (rad/s): {float(rate)}" in capsys.readouterr().err


def _load_benchmark(name, monkeypatch):
    spec = importlib.util.spec_from_file_location(name, f"{ROOT}/benchmarks/{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_yaw_swing_splits_power_by_gait_harmonic(monkeypatch):
    """A 1.4 Hz swing and a 20 Hz chatter of half its amplitude (f = 1.5 Hz): 80% / 20%, in the
    stride's band and the chatter band; a slow 0.2 Hz drift lands below f/3."""
    yaw_swing = _load_benchmark("yaw_swing", monkeypatch)
    t = np.arange(SETTLE_STEPS) * 0.02  # 5 s at the control rate: 0.2 Hz bins
    signal = 0.3 + np.sin(2 * np.pi * 1.4 * t) + 0.5 * np.sin(2 * np.pi * 20.0 * t)
    np.testing.assert_allclose(yaw_swing.band_shares(signal, 0.02, 1.5), [0, 0.8, 0, 0.2],
                               atol=1e-6)  # fmt: skip
    drift = np.sin(2 * np.pi * 0.2 * t) + np.sin(2 * np.pi * 6.0 * t)
    np.testing.assert_allclose(yaw_swing.band_shares(drift, 0.02, 1.5), [0.5, 0, 0.5, 0],
                               atol=1e-6)  # fmt: skip


def test_yaw_swing_measures_the_shipped_policy_turning_in_place(monkeypatch, capsys):
    """Turning left in place: the heading-rate error is the command's shortfall plus swing (play.py
    measures 0.39 instantaneous, 0.25 net), each action recorded once per control step."""
    yaw_swing = _load_benchmark("yaw_swing", monkeypatch)
    policy = os.path.join(ROOT, "policies", "wildrobot_walk.msgpack")
    config, actor_vars, stats = export.load_checked(policy, 0)
    ctrl = export.exported_controller(config, actor_vars, stats, yaw_swing.RecordingController)
    row = yaw_swing.measure(config.env, ctrl, (0.0, 0.0, 1.0), episodes=1)
    assert len(ctrl.actions) == config.env.episode_length
    assert row["episodes"] == 1 and 0.2 < row["error"] < 0.6, row
    assert row["shares"].sum() == pytest.approx(1.0) and 0.0 < row["action_change"] < 0.5, row
    yaw_swing.main([policy, "--commands", "0,0,1", "--episodes", "1"])
    assert f"| 0.00, 0.00, 1.00 | {row['error']:.3f} |" in capsys.readouterr().out


def test_yaw_swing_finds_the_stance_foot_turning_the_root(monkeypatch, capsys):
    """A foot flat on its two capsules touches at four points; walking at 0.3 m/s the shipped
    policy is mostly in single support, on a heel, toe or edge, and the stance foot's own turning
    carries most of the root's yaw rate (0.86 over 4 episodes): the other foot's would not."""
    yaw_swing = _load_benchmark("yaw_swing", monkeypatch)
    robot = yaw_swing.MujocoRobot(EnvConfig(), noise=False)
    robot.reset()
    np.testing.assert_array_equal(yaw_swing.sole_points(robot), [4, 4])
    policy = os.path.join(ROOT, "policies", "wildrobot_walk.msgpack")
    config, actor_vars, stats = export.load_checked(policy, 0)
    ctrl = export.exported_controller(config, actor_vars, stats, yaw_swing.Controller)
    row = yaw_swing.stance(config.env, ctrl, (0.3, 0.0, 0.0), episodes=1)
    assert row["episodes"] == 1 and 0.6 < row["single"] < 1.0 and 1.0 < row["points"] < 4.0, row
    assert 0.5 < row["tilted"] < 1.0 and row["carried"] > 0.6, row
    yaw_swing.main([policy, "--commands", "0", "--episodes", "1", "--stance"])
    assert "| 0.00, 0.00, 0.00 | 0.00 | nan |" in capsys.readouterr().out  # standing: no stance


def test_yaw_swing_unwraps_the_heading_and_skips_falls(monkeypatch):
    """Still for 4.9 s, then turning at 1.8 rad/s (past +-pi at 6.6 s): over the last 5 s the error
    against a 2 rad/s command is 0.2, with no spikes at the wraps; an episode that fell is left
    out."""
    yaw_swing = _load_benchmark("yaw_swing", monkeypatch)
    config = EnvConfig()
    steps, t = config.episode_length, np.arange(config.episode_length) * config.ctrl_dt
    episodes = iter([steps, steps // 2])  # a whole episode, then one that fell halfway

    class Ctrl:
        actions = []

    def episode(robot, ctrl, command, phase):
        n = next(episodes)
        ctrl.actions = [np.full(9, 0.1 * (i % 2)) for i in range(n)]  # flips by 0.1 each step
        heading = np.angle(np.exp(1j * 1.8 * np.maximum(t[:n] - 4.9, 0.0)))  # in (-pi, pi]
        return {"heading": heading, "alive": np.r_[np.ones(n - 1, bool), n == steps]}

    monkeypatch.setattr(yaw_swing, "MujocoRobot", lambda *a, **k: None)
    monkeypatch.setattr(yaw_swing, "run_mujoco_episode", episode)
    row = yaw_swing.measure(config, Ctrl(), (0.0, 0.0, 2.0), episodes=2)
    assert row["episodes"] == 1
    assert row["error"] == pytest.approx(0.2, abs=1e-6)
    assert row["action_change"] == pytest.approx(0.1)
