"""Tests of the config checks: every bad value, file or model is a named ConfigError before anything
is compiled or written; `extends`, paths relative to a config file; the worked example of README
"Bring your own robot"; one-line errors of play.py and export.py on files they cannot use."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import driver
import export
import play
import ppo
import runs
from config import ConfigError
from env import EnvConfig, WildRobotEnv, load_env_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "configs", "smoke.toml")
ASSETS = os.path.join(ROOT, "tests", "assets")
BIPED12 = os.path.join(ASSETS, "biped12.toml")


# ---------------------------------------------------------------------------------------------
# Values: bounds of every field, checked in load_config (before any env is built)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("num_envs=1.5", "'num_envs' wants int"),
        ({"num_envs": 1.5}, "'num_envs' wants int"),  # as a TOML file gives it
        ("num_envs=inf", "'num_envs' wants int"),
        ("num_envs=nan", "'num_envs' wants int"),
        ("seed=1e30", "'seed' must be <= 4294967295"),
        ("seed=-1", "'seed' must be >= 0"),
        ("num_seeds=0", "'num_seeds' must be >= 1"),
        ("total_steps=0", "'total_steps' must be >= 1"),
        ("learning_rate=-1", "'learning_rate' must be > 0"),
        ("learning_rate=nan", "'learning_rate' must be a finite number"),
        ("learning_rate=inf", "'learning_rate' must be a finite number"),
        ("max_grad_norm=0", "'max_grad_norm' must be > 0"),
        ("gamma=1.5", "'gamma' must be <= 1"),
        ("gae_lambda=-0.1", "'gae_lambda' must be >= 0"),
        ("clip_eps=-1", "'clip_eps' must be > 0"),
        ("entropy_coef=-0.1", "'entropy_coef' must be >= 0"),
        ("checkpoint_every=-1", "'checkpoint_every' must be >= 0"),
        ("actor_hidden=64,0", "'actor_hidden' must be >= 1"),
        ({"anneal_lr": 2}, "'anneal_lr' wants bool"),
        ({"learning_rate": True}, "'learning_rate' wants float"),
        ("activation=gelu2", "activation 'gelu2' is not one of"),
        ("num_minibatches=3", "num_minibatches 3 does not divide"),
        ("env.sim_dt=-0.005", "'env.sim_dt' must be > 0"),
        ("env.sim_dt=0", "'env.sim_dt' must be > 0"),
        ("env.ctrl_dt=0", "'env.ctrl_dt' must be > 0"),
        ("env.ctrl_dt=0.021", "env.ctrl_dt 0.021 is not a multiple of sim_dt 0.005"),
        ("env.sim_dt=0.03", "is not a multiple of sim_dt 0.03"),  # no substep at all
        ("env.episode_length=0", "'env.episode_length' must be >= 1"),
        ("env.episode_length=1e12", "'env.episode_length' must fit in 32 bits"),
        ("env.iterations=0", "'env.iterations' must be >= 1"),
        ("env.solver=pgs", "env.solver 'pgs' is not one of ['cg', 'newton']"),
        ("env.tracking_sigma=0", "'env.tracking_sigma' must be > 0"),
        ("env.zero_command_prob=2", "'env.zero_command_prob' must be <= 1"),
        ("env.action_filter_alpha=0", "'env.action_filter_alpha' must be > 0"),
        ("env.soft_joint_limit=1.5", "'env.soft_joint_limit' must be <= 1"),
        ("env.max_tilt=0", "'env.max_tilt' must be > 0"),
        ("env.min_base_height=0.8", "env.min_base_height 0.8 is not below max_base_height 0.7"),
        ("env.lin_vel_x=0.5,0", "env.lin_vel_x has lo 0.5 > hi 0.0"),
        ("env.reward_scales.pose=nan", "'env.reward_scales.pose' must be a finite number"),
        ("env.noise.gyro=-0.1", "'env.noise.gyro' must be >= 0"),
        (
            "env.randomization.link_mass_scale=-1,0",
            "'env.randomization.link_mass_scale' must be > 0",
        ),
        ("env.randomization.kp_scale=0,1", "'env.randomization.kp_scale' must be > 0"),
        (
            "env.randomization.floor_friction=-0.5,1",
            "'env.randomization.floor_friction' must be >=",
        ),
        ("env.randomization.kp_scale=1.2,0.8", "env.randomization.kp_scale has lo 1.2 > hi 0.8"),
        ("env.randomization.action_delay=-1,0", "'env.randomization.action_delay' must be >= 0"),
        (
            "env.randomization.action_delay=0,3",
            "action_delay (0, 3) must lie in 0..max_action_delay",
        ),
        ("env.randomization.push_interval=0,1", "'env.randomization.push_interval' must be > 0"),
    ],
)
def test_bad_values_are_named_before_anything_is_built(override, named):
    with pytest.raises(ConfigError) as error:
        ppo.load_config(SMOKE, override if isinstance(override, dict) else [override])
    assert named in str(error.value)


def test_defaults_and_shipped_configs_pass_the_checks():
    import amp  # noqa: PLC0415
    import track  # noqa: PLC0415

    ppo.check_config(ppo.PPOConfig(env=EnvConfig()))
    names = sorted(os.listdir(os.path.join(ROOT, "configs")))
    assert {"smoke.toml", "wildrobot_walk.toml", "wildrobot_walk_gpu.toml"} <= set(names)
    for name in names:
        # [amp] and [track] are unknown sections to ppo
        learner = amp if "amp" in name else track if "track" in name else ppo
        learner.load_config(os.path.join(ROOT, "configs", name))


def test_cli_rejects_a_bad_value_before_creating_the_run_directory(tmp_path, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        ppo.main(["--config", SMOKE, "--run-dir", str(run_dir), "env.ctrl_dt=0"])
    assert exit_.value.code == 2
    assert "'env.ctrl_dt' must be > 0" in capsys.readouterr().err
    assert not run_dir.exists()


# ---------------------------------------------------------------------------------------------
# Files: line numbers, `extends`, paths relative to the file
# ---------------------------------------------------------------------------------------------


def test_malformed_file_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nnum_envs = 8\nlearning_rate = = 3\n')
    with pytest.raises(ConfigError, match=r"malformed config file '.*bad\.toml'.*line 3"):
        ppo.load_config(str(bad))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"name": "x",\n "num_envs": }\n')
    with pytest.raises(ConfigError, match=r"malformed config file '.*bad\.json'.*line 2"):
        ppo.load_config(str(bad_json))


def test_bad_key_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("num_envz = 8\n")
    with pytest.raises(ConfigError, match=r"'num_envz' \(did you mean 'num_envs'\?\) \(in '.*typo"):
        ppo.load_config(str(path))


def test_extends_chains_apply_base_first(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "base.toml").write_text(
        f'extends = "{SMOKE}"\nnum_envs = 16\n[env]\ntracking_sigma = 0.2\n'
    )
    (tmp_path / "b" / "child.toml").write_text(
        'extends = "../a/base.toml"\nnum_envs = 4\n[env.noise]\ngyro = 0.0\n'
    )
    config = ppo.load_config(str(tmp_path / "b" / "child.toml"), ["unroll_length=4"])
    assert config.name == "smoke"  # from smoke.toml, two files up
    assert (config.num_envs, config.unroll_length) == (4, 4)  # child, then the command line
    assert config.env.tracking_sigma == 0.2 and config.env.noise.gyro == 0.0
    assert load_env_config(str(tmp_path / "b" / "child.toml")).tracking_sigma == 0.2


def test_extends_cycle_is_an_error(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\nnum_envs = 4\n')
    with pytest.raises(ConfigError, match=r"extends itself: a.toml -> b.toml -> a.toml"):
        ppo.load_config(str(tmp_path / "a.toml"))
    (tmp_path / "c.toml").write_text('extends = "missing.toml"\n')
    with pytest.raises(ConfigError, match=r"config file not found: '.*missing.toml'"):
        ppo.load_config(str(tmp_path / "c.toml"))


def _mini_biped_toml(folder, model_path: str) -> str:
    path = os.path.join(folder, "robot.toml")
    with open(path, "w") as f:
        f.write(
            f'extends = "{SMOKE}"\n[env]\nmodel_path = "{model_path}"\n'
            'actuators = ["l_hip_servo", "l_knee_servo", "l_ankle_servo", "r_hip_servo", '
            '"r_knee_servo", "r_ankle_servo"]\n'
            'joints = ["l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle"]\n'
            'root_body = "pelvis"\ntorso_body = "pelvis"\nimu_site = "chest_imu"\n'
            'feet_sites = ["l_sole_site", "r_sole_site"]\n'
            'sole_geoms = ["l_toe", "l_heel", "r_toe", "r_heel"]\nhome_keyframe = "stand"\n'
            "base_height_target = 0.26\nmin_base_height = 0.15\nmax_base_height = 0.4\n"
        )
    return path


def test_relative_model_path_is_relative_to_the_config_file(tmp_path, monkeypatch):
    robot_dir, elsewhere = tmp_path / "robot", tmp_path / "elsewhere"
    robot_dir.mkdir()
    elsewhere.mkdir()
    shutil.copy(os.path.join(ASSETS, "mini_biped.xml"), robot_dir / "mini.xml")
    toml = _mini_biped_toml(str(robot_dir), "mini.xml")
    monkeypatch.chdir(elsewhere)
    config = ppo.load_config(toml)
    assert config.env.model_path == str(robot_dir / "mini.xml")  # absolute: config.json keeps it
    assert WildRobotEnv(config.env).nu == 6
    # The saved config means the same file from anywhere (as on resume or in play.py).
    monkeypatch.chdir(tmp_path)
    saved = json.loads(driver.config_json(config))
    assert ppo.load_config(overrides=saved).env.model_path == str(robot_dir / "mini.xml")
    # A path given on the command line is relative to the working directory.
    config = ppo.load_config(toml, ["env.model_path=robot/mini.xml"])
    assert config.env.model_path == str(robot_dir / "mini.xml")
    # The repository's default still resolves against the repository, from anywhere.
    assert ppo.load_config(SMOKE).env.model_path == "assets/scene.xml"
    assert WildRobotEnv(ppo.load_config(SMOKE).env).nu == 9


def test_missing_model_says_where_it_looked(tmp_path):
    toml = _mini_biped_toml(str(tmp_path), "nope.xml")
    config = ppo.load_config(toml)
    with pytest.raises(ConfigError, match=r"model file not found: 'nope.xml'.*next to the config"):
        WildRobotEnv(config.env)


# ---------------------------------------------------------------------------------------------
# Models: what env.py needs of an MJCF robot, each a named error at load time
# ---------------------------------------------------------------------------------------------

MINI = EnvConfig(
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
)
with open(os.path.join(ASSETS, "mini_biped.xml")) as _f:
    MINI_XML = _f.read()
HIP = '<position name="l_hip_servo" joint="l_hip"/>'
KEYFRAME = MINI_XML[MINI_XML.index("<keyframe>") : MINI_XML.index("</keyframe>") + 11]


def _unnamed_actuators(xml: str) -> str:
    for side in "lr":
        for joint in ("hip", "knee", "ankle"):
            xml = xml.replace(f'name="{side}_{joint}_servo" ', "")
    return xml


@pytest.mark.parametrize(
    ("edit", "changes", "named"),
    [
        (lambda x: x.replace(HIP, HIP.replace("position", "motor")), {},
         "actuator 'l_hip_servo' in '.*' is not a position servo"),
        (lambda x: x.replace(HIP, '<velocity name="l_hip_servo" joint="l_hip" kv="1"/>'), {},
         "actuator 'l_hip_servo' .* is not a position servo"),
        (lambda x: x.replace(HIP, HIP.replace("/>", ' gear="2"/>')), {},
         "actuator 'l_hip_servo' .* has gear 2"),
        (_unnamed_actuators, {},
         "actuator 'l_hip_servo' is not in .*: its actuators have no names; name them like <pos"),
        (lambda x: x.replace(KEYFRAME, ""), {},
         "keyframe 'stand' is not in .*: it has no keyframes; add <key name=.* in <keyframe>"),
        (lambda x: x.replace("<freejoint/>", "").replace("0 0 0.262 1 0 0 0", ""), {},
         "root body 'pelvis' must carry the model's first, free joint"),
        (lambda x: x.replace('type="sphere" size="0.012"', 'type="cylinder" size="0.012 0.01"'),
         {}, "sole geom 'l_toe' .* must be a sphere, capsule or box"),
        (lambda x: x.replace('size="0.012" contype="1"', 'size="0.012" contype="0"'), {},
         "sole geom 'l_toe' .* collides with nothing"),
        (lambda x: x.replace("0 0 0.262 1 0 0 0", "0 0 0.3 1 0 0 0"), {},
         r"keyframe 'stand' .* sole geom 'l_toe' is 0.0\d\d m above the floor: the home pose must"),
        (lambda x: x.replace('"l_sole_site" pos="0 0 -0.042"', '"l_sole_site" pos="0 0 0"'), {},
         r"foot site 'l_sole_site' is 0.0\d\d m above the floor: put each foot site at the bott"),
        (lambda x: x, {"sole_geoms": ("l_toe", "r_toe", "l_heel", "r_heel")},
         "sole geom 'r_toe' is not on the foot of site 'l_sole_site'.*feet_sites order"),
        (lambda x: x, {"randomization": {"torso_mass_offset": (-1.0, 0.0)}},
         r"torso_mass_offset \(-1.0, 0.0\) can leave torso_body 'pelvis' \(0.800 kg\) without"),
        (lambda x: x, {"actuators": ()}, "no actuators configured"),
    ],
)  # fmt: skip
def test_model_requirements_are_named(tmp_path, edit, changes, named):
    xml = edit(MINI_XML)
    assert xml != MINI_XML or changes, "the edit changed nothing"
    path = tmp_path / "robot.xml"
    path.write_text(xml)
    config = ppo.override(MINI, {"model_path": str(path), **changes})
    with pytest.raises(ConfigError, match=named):
        WildRobotEnv(config)


def test_env_checks_values_when_built_directly():
    with pytest.raises(ConfigError, match="'sim_dt' must be > 0"):
        WildRobotEnv(EnvConfig(sim_dt=0.0))


def test_model_requirements_hold_for_the_shipped_robots():
    WildRobotEnv(EnvConfig())
    WildRobotEnv(ppo.override(MINI, {"model_path": os.path.join(ASSETS, "mini_biped.xml")}))


# ---------------------------------------------------------------------------------------------
# The worked example of README "Bring your own robot"
# ---------------------------------------------------------------------------------------------


def test_biped12_example_loads_extends_the_walking_config_and_trains_one_update(tmp_path):
    config = ppo.load_config(BIPED12)
    walk = ppo.load_config(ppo.DEFAULT_CONFIG)
    assert config.name == "biped12_walk" and config.entropy_coef == walk.entropy_coef
    assert config.env.tracking_sigma == walk.env.tracking_sigma
    assert config.env.model_path == os.path.join(ASSETS, "biped12.xml")
    env = WildRobotEnv(config.env)
    assert (env.action_size, env.nfeet, len(config.env.sole_geoms)) == (12, 2, 2)
    tiny = ppo.load_config(BIPED12, [
        "num_envs=2", "unroll_length=2", "num_minibatches=1", "num_epochs=1", "total_steps=4",
        "updates_per_chunk=1", "actor_hidden=8", "critic_hidden=8", "symmetry_coef=0.1",
    ])  # fmt: skip
    state = ppo.run(tiny, str(tmp_path / "run"), env)
    assert int(state.update[0]) == 1
    assert (tmp_path / "run" / "policy.msgpack").exists()
    metrics = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["loss/symmetry"] > 0


def test_mirror_pairs_the_biped12_joints_by_their_names():
    """L_ joints trade places with R_ ones; names that do not tell left from right are refused
    (a self-paired hip is 100 mm off the middle)."""
    config = ppo.load_config(BIPED12)
    env = WildRobotEnv(config.env)
    _, action = env.mirror()
    np.testing.assert_array_equal(np.abs(action), np.roll(np.eye(12), 6, axis=0))
    # Yaw and roll axes turn the other way in the mirror; pitch axes the same way.
    np.testing.assert_array_equal(np.diag(np.roll(action, 6, axis=0))[:6], [-1, -1, 1, 1, 1, -1])
    unnamed = WildRobotEnv(ppo.override(config.env, {"mirror_names": ("left", "right")}))
    with pytest.raises(ConfigError, match="joint 'L_hip_yaw' is 100 mm from the mirror image"):
        unnamed.mirror()


# ---------------------------------------------------------------------------------------------
# Saved policies: files export.py and play.py cannot use
# ---------------------------------------------------------------------------------------------


def _save_smoke_policy(path: str, obs_extra: int = 0) -> None:
    """A random smoke-config policy whose network takes `obs_extra` more inputs than it should."""
    config = ppo.load_config(SMOKE)
    env = WildRobotEnv(config.env)
    n = env.obs_size + obs_extra
    actor = ppo.Actor(config.actor_hidden, env.action_size, config.activation)
    params = actor.init(jax.random.key(0), jnp.zeros(n))
    stats = ppo.normalizer_init(n)
    driver.save_policy(path, config, params, stats)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """name -> (path, seed, a regex of the error naming the file and what is wrong)."""
    d = tmp_path_factory.mktemp("policies")
    (d / "corrupt.msgpack").write_bytes(b"\x93garbage\x00\xff")
    runs.save_msgpack(str(d / "other.msgpack"), leaves={"x": 1})
    _save_smoke_policy(str(d / "policy.msgpack"))
    _save_smoke_policy(str(d / "wide.msgpack"), obs_extra=1)
    return {
        "missing": (d / "missing.msgpack", 0, "policy file not found: '.*missing.msgpack'"),
        "directory": (d, 0, "cannot read policy file '.*'"),
        "corrupt": (d / "corrupt.msgpack", 0, "cannot read policy file '.*corrupt.msgpack'"),
        "other": (d / "other.msgpack", 0, "'.*other.msgpack' is not a policy or checkpoint"),
        "seed": (d / "policy.msgpack", 3, "'.*policy.msgpack' has no seed 3: it holds seeds 0"),
        "wide": (d / "wide.msgpack", 0, "policy '.*wide.msgpack' maps 39 observations"),
    }


@pytest.mark.parametrize("name", ["missing", "directory", "corrupt", "other", "seed", "wide"])
def test_export_refuses_with_one_line_and_writes_nothing(bad_files, tmp_path, name):
    path, seed, named = bad_files[name]
    out = tmp_path / "out" / "policy"
    with pytest.raises(SystemExit) as exit_:
        export.main([str(path), "--out", str(out), "--no-onnx", "--seed", str(seed)])
    message = str(exit_.value.code)
    assert message.startswith("export.py: error: ") and "\n" not in message
    assert re.search(named, message), message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["missing", "corrupt", "other", "seed", "wide"])
def test_play_refuses_with_one_line(bad_files, name):
    path, seed, named = bad_files[name]
    with pytest.raises(SystemExit) as exit_:
        play.main([str(path), "--skip", "jax", "--skip", "mujoco", "--seed", str(seed)])
    message = str(exit_.value.code)
    assert message.startswith("play.py: error: ") and "\n" not in message
    assert re.search(named, message), message


def test_export_writes_a_matching_policy(bad_files, tmp_path):
    export.main([str(bad_files["seed"][0]), "--out", str(tmp_path / "p"), "--no-onnx"])
    assert (tmp_path / "p.npz").exists()


def test_play_script_prints_one_line_without_traceback(tmp_path):
    missing = str(tmp_path / "nope.msgpack")
    out = subprocess.run(
        [sys.executable, "play.py", missing], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if "warp" not in line]  # mjx's notice
    assert lines == [f"play.py: error: policy file not found: '{missing}'"], out.stderr
