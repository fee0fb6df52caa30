"""The exported policy (NumPy and ONNX) matches the JAX policy, and the robot-side observation
built from plain-MuJoCo sensor readings matches the training environment's."""

import os

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import export
import ppo
from config import override
from deploy import Controller, gravity_in_sensor_frame
from env import EnvConfig, WildRobotEnv
from play import MujocoRobot, evaluate_mujoco
from wrappers import normalizer_init, normalizer_update

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
    stats = normalizer_update(normalizer_init(env.obs_size), jnp.asarray(data))
    path = str(tmp_path_factory.mktemp("policy") / "policy.msgpack")
    ppo.save_policy(path, config, params, stats)
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


def test_onnx_policy_matches_jax(saved_policy):
    ort = pytest.importorskip("onnxruntime")
    config, loaded, out, data = saved_policy
    export.write_onnx(out + ".onnx", *loaded)
    session = ort.InferenceSession(out + ".onnx")
    obs = data[:64]
    got = session.run(["action"], {"obs": obs})[0]
    want = np.asarray(jax.jit(jax.vmap(ppo.make_policy(*loaded)))(obs))
    np.testing.assert_array_less(np.abs(got - want), 1e-5)


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


def test_robot_side_observation_matches_the_env():
    """Same physical state: env.step's actor obs == deploy.Controller.observation of the sensors."""
    env = WildRobotEnv(NOISELESS)
    action = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, env.action_size), jnp.float32)

    @jax.jit
    def two_steps(key):
        state = env.step(env.reset(key), action)
        return state, env.step(state, -action)

    first, state = two_steps(jax.random.key(0))
    robot = MujocoRobot(NOISELESS, noise=False)
    # After a step, MuJoCo's (and MJX's) positions and velocities are new but the kinematics were
    # computed before the last integration; the robot-side code reads the same. Rebuild that state:
    # semi-implicit Euler made qvel = qvel0 + dt * qacc and qpos = qpos0 + dt * qvel.
    m, d = robot.model, robot.data
    dt = NOISELESS.sim_dt
    d.qvel[:] = np.asarray(state.data.qvel) - dt * np.asarray(state.data.qacc)
    d.qpos[:] = np.asarray(state.data.qpos)
    mujoco.mj_integratePos(m, d.qpos, np.asarray(state.data.qvel, np.float64), -dt)
    mujoco.mj_forward(m, d)
    d.qpos[:] = np.asarray(state.data.qpos)  # the encoders read the new joint positions
    d.qvel[:] = np.asarray(state.data.qvel)

    npz = {
        "obs_names": [n for n, _ in env.actor_layout.pieces],
        "obs_sizes": [s for _, s in env.actor_layout.pieces],
        "home": np.asarray(env.home_joints),
        "joint_lo": np.asarray(env.joint_lo),
        "joint_hi": np.asarray(env.joint_hi),
        "action_scale": NOISELESS.action_scale,
        "action_filter_alpha": NOISELESS.action_filter_alpha,
        "gait_frequency": NOISELESS.gait_frequency,
        "ctrl_dt": NOISELESS.ctrl_dt,
    }
    ctrl = Controller(policy=None, meta=npz)
    ctrl.phase = float(state.info.phase)
    ctrl.last_action = np.asarray(-action)
    obs = ctrl.observation(*robot.sensors(), command=np.asarray(state.info.command))
    np.testing.assert_allclose(obs, np.asarray(state.obs), atol=2e-4)
    # The controller's targets are the env's servo targets for the same action.
    ctrl.policy = lambda _: np.asarray(action)
    targets = ctrl.step(*robot.sensors(), command=np.asarray(state.info.command))
    np.testing.assert_allclose(targets, np.asarray(first.data.ctrl[env.ids.actuators]), atol=1e-6)


def test_shipped_policy_walks_in_plain_mujoco():
    """The shipped .npz, run as on the robot, still walks: guards the observation layout, the
    controller and the model against changes that would silently break the released policy."""
    config = ppo.load_policy_params(os.path.join(ROOT, "policies", "wildrobot_walk.msgpack"))[0]
    ctrl = Controller.load(os.path.join(ROOT, "policies", "wildrobot_walk.npz"))
    ctrl.delay = config.env.randomization.action_delay[1]
    commands = [0.0, 0.25, 0.5]
    rows = evaluate_mujoco(config.env, ctrl, commands, episodes=2)
    for row in rows:
        assert row["fall_rate"] == 0.0, row
        assert row["vel_err"] < 0.1, row
