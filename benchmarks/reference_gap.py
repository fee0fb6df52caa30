"""How close a policy's gait is to the reference clips, for any number of policies side by side.

For each policy and each clip speed (the `speed` a data/walk_<v>.npz records, v > 0), the MJX env
runs the deterministic policy at that forward command (nominal physics: no randomization, no
pushes, no sensor noise) and records the last 6 s of 8 s episodes. Then, per policy:
  * held-out accuracy of a fresh discriminator: amp.Discriminator trained after the fact (LSGAN,
    the AMP features of transitions (s, s'), fixed steps) to tell this policy's transitions from
    the reference ones on 70% of each, scored on the other 30%. 50% = indistinguishable. One
    column per --penalty weight: without a gradient penalty the discriminator may carve any
    boundary, and two different deterministic gaits at nominal physics are then told apart
    almost always; with the penalty AMP trains with, it must stay smooth around the reference,
    as the discriminator that shaped the policy did;
  * phase-averaged joint trajectories: mean joint angle in 20 bins of the env's gait clock, policy
    vs the clip of the same speed (which carries the same clock); RMS over bins, per joint;
  * foot slip (sim2sim.foot_slip, as in play.py's tables) and the share of time each servo spends at
    its torque limit (|force| >= 99% of forcerange);
  * with --groups, what gives the policy away: a fresh discriminator's held-out accuracy on each
    group of features alone (env.amp_feature_groups) and the policy's spread in that group
    relative to the reference's (the root of the group's summed variances, policy over reference).

    python benchmarks/reference_gap.py policies/wildrobot_walk.msgpack runs/<amp run>/policy.msgpack
    python benchmarks/reference_gap.py runs/<amp run>/policy.msgpack --groups

A track.py policy (the one that made data/tracked) runs in its own GaitTracking env, asked for the
speed its clips were recorded from (walk_<walked>_from_<source>.npz): it calibrates the scale, as
the policy that performs the reference itself, from another start.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import amp  # noqa: E402
import motion  # noqa: E402
import ppo  # noqa: E402
import track  # noqa: E402
from env import WildRobotEnv, nominal_config  # noqa: E402
from sim2sim import foot_slip  # noqa: E402
from wrappers import normalizer_init, normalizer_update  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS, SETTLE = 8.0, 2.0
BINS = 20


def rollouts(
    policy_path: str, speeds: list[float], episodes: int, tracker: bool
) -> dict[str, np.ndarray]:
    """(speeds, episodes, steps, ...) qpos, qvel, phase, forces, slip, alive of one policy, each
    speed its forward command. A track.py policy runs in its GaitTracking env (its residuals on
    the kinematic clips' poses), at the speeds given."""
    if tracker:
        _, env, _, policy = track.load_tracker(policy_path)
    else:
        config, actor, stats = ppo.load_policy_params(policy_path)
        env = WildRobotEnv(nominal_config(config.env))
        policy = ppo.make_policy(config, actor, stats)
    policy = jax.vmap(policy)
    steps = int(SECONDS / env.config.ctrl_dt)
    cmds = jnp.repeat(jnp.asarray(speeds, jnp.float32), episodes)
    cmds = jnp.stack([cmds, jnp.zeros_like(cmds), jnp.zeros_like(cmds)], axis=1)
    contact = env.critic_layout.slice("foot_contact")
    feet_vel = env.critic_layout.slice("feet_vel")

    @jax.jit
    def run(key):
        state = jax.vmap(env.set_command)(
            jax.vmap(env.reset)(jax.random.split(key, len(cmds))), cmds
        )

        def body(carry, _):
            state, alive = carry
            phase = state.info.phase
            state = jax.vmap(env.step)(state, policy(state.obs))
            alive = alive & ~state.terminated
            obs = state.critic_obs
            return (state, alive), {
                "qpos": state.data.qpos,
                "qvel": state.data.qvel,
                "phase": phase,  # the clock of the pose at the start of this step
                "force": state.data.actuator_force[:, env.ids.actuators],
                "slip": foot_slip(obs[:, feet_vel], obs[:, contact], env.nfeet),
                "alive": alive,
            }

        return jax.lax.scan(body, (state, jnp.ones(len(cmds), bool)), None, steps)[1]

    out = jax.tree.map(np.asarray, run(jax.random.key(0)))
    shape = (len(speeds), episodes)
    out = {k: np.moveaxis(v, 0, 1).reshape(shape + (steps,) + v.shape[2:]) for k, v in out.items()}
    out["limit"] = np.asarray(env.mj_model.actuator_forcerange[env.ids.actuators, 1])
    out["env"] = env
    return out


def phase_profile(joints: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """(BINS, joints) mean joint angle per bin of the gait clock."""
    bins = np.minimum((phase / (2 * np.pi) * BINS).astype(int), BINS - 1)
    return np.stack([joints[bins == b].mean(0) for b in range(BINS)])


def fresh_discriminator_accuracy(
    policy_pairs: np.ndarray, reference_pairs: np.ndarray, penalty: float, seed: int = 0
) -> float:
    """Held-out accuracy of a discriminator trained from scratch on 70% of each source; `seed`
    draws the split, the initial weights and the batches."""
    rng = np.random.default_rng(seed)
    policy_pairs, reference_pairs = rng.permutation(policy_pairs), rng.permutation(reference_pairs)
    cut_p, cut_r = int(0.7 * len(policy_pairs)), int(0.7 * len(reference_pairs))
    stats = normalizer_update(
        normalizer_init(policy_pairs.shape[-1]),
        jnp.asarray(np.concatenate([policy_pairs[:cut_p], reference_pairs[:cut_r]]).reshape(
            -1, policy_pairs.shape[-1])),
    )  # fmt: skip
    disc = amp.Discriminator((256, 256))
    params = disc.init(jax.random.key(2 * seed), jnp.zeros(2 * policy_pairs.shape[-1]))
    optimizer = optax.adam(3e-4)
    train_p, train_r = jnp.asarray(policy_pairs[:cut_p]), jnp.asarray(reference_pairs[:cut_r])

    @jax.jit
    def train(params, key):
        def step(carry, key):
            params, opt_state = carry
            k1, k2 = jax.random.split(key)
            pol = train_p[jax.random.randint(k1, (512,), 0, len(train_p))]
            ref = train_r[jax.random.randint(k2, (512,), 0, len(train_r))]
            grads = jax.grad(lambda p: amp.disc_loss(p, disc, stats, ref, pol, penalty)[0])(params)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(step, (params, optimizer.init(params)), jax.random.split(key, 3000))

    (params, _), _ = train(params, jax.random.key(2 * seed + 1))
    score = lambda pairs: disc.apply(params, amp.disc_input(stats, jnp.asarray(pairs)))  # noqa: E731
    return float(amp.accuracy(score(reference_pairs[cut_r:]), score(policy_pairs[cut_p:])))


def value_range(values: list[float]) -> str:
    """' (lo-hi)' of several accuracies, nothing for one."""
    return f" ({min(values):.1%}-{max(values):.1%})" if len(values) > 1 else ""


def label(path: str) -> str:
    """A policy's name in the tables: its file, with the run directory for a run's files."""
    name = os.path.basename(path)
    if name in ("policy.msgpack", "checkpoint.msgpack"):
        return os.path.join(os.path.basename(os.path.dirname(os.path.abspath(path))), name)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("policies", nargs="+", help="policy or checkpoint files")
    parser.add_argument("--data", default=os.path.join(ROOT, "data"), help="reference clips")
    parser.add_argument("--episodes", type=int, default=8, help="per speed")
    parser.add_argument(
        "--penalty",
        type=float,
        nargs="+",
        default=[0.0, 20.0],
        help="gradient-penalty weights of fresh discriminators, one column each (the default AMP "
        "config trains with 20); --groups uses the first",
    )
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh discriminators per column (split, weights and batches drawn "
                        "anew): the mean, with the range when more than one")  # fmt: skip
    parser.add_argument("--groups", action="store_true", help="accuracy per feature group")
    args = parser.parse_args()

    rows = []
    for path in args.policies:
        config = ppo.load_policy_params(path)[0]
        clips = motion.load_motion(args.data, config.env)
        labels = [float(np.load(c)["speed"]) for c in clips.clip_names]
        speeds = sorted(set(labels) - {0.0})
        clip_of = [labels.index(v) for v in speeds]  # the first clip of each speed
        commands = speeds
        tracker = track.is_tracker(path)
        if tracker:  # asked for the speed its clip was recorded from
            sources = [track.tracked_clip_source(clips.clip_names[k]) for k in clip_of]
            commands = [v if s is None else s for v, s in zip(speeds, sources, strict=True)]
        out = rollouts(path, commands, args.episodes, tracker)
        env = out["env"]
        featurize = motion.make_featurize(env)
        ref_features = motion.motion_features(env, clips, featurize)
        s, s_next = motion.transitions(clips, ref_features)
        reference_pairs = np.stack([s, s_next], axis=1)
        settle = int(SETTLE / env.config.ctrl_dt)
        alive = out["alive"][:, :, settle:]
        qpos = out["qpos"][:, :, settle:][alive]
        qvel = out["qvel"][:, :, settle:][alive]
        features = np.asarray(featurize(qpos, qvel))
        # Consecutive steps of one surviving episode make a pair.
        keep = (alive[:, :, :-1] & alive[:, :, 1:]).reshape(-1)
        feats_all = np.zeros(alive.shape + (features.shape[-1],), np.float32)
        feats_all[alive] = features
        pairs = np.stack([feats_all[:, :, :-1], feats_all[:, :, 1:]], axis=-2)
        policy_pairs = pairs.reshape(-1, 2, features.shape[-1])[keep]
        accuracy = [[fresh_discriminator_accuracy(policy_pairs, reference_pairs, w, seed)
                     for seed in range(args.repeats)] for w in args.penalty]  # fmt: skip
        groups = {}
        for name, cols in env.amp_feature_groups.items() if args.groups else ():
            spread = np.sqrt(policy_pairs[:, 0, cols].var(0).sum()
                             / reference_pairs[:, 0, cols].var(0).sum())  # fmt: skip
            groups[name] = (fresh_discriminator_accuracy(policy_pairs[..., cols],
                                                         reference_pairs[..., cols],
                                                         args.penalty[0]),
                            float(spread))  # fmt: skip

        joints = env.ids.qpos
        rms = []
        for i, clip in enumerate(clip_of):
            ref = phase_profile(clips.qpos[clips.clip == clip][:, joints],
                                clips.phase[clips.clip == clip])  # fmt: skip
            a = alive[i]
            pol = phase_profile(out["qpos"][i, :, settle:][a][:, joints],
                                out["phase"][i, :, settle:][a])  # fmt: skip
            rms.append(np.sqrt(((pol - ref) ** 2).mean(0)))
        rms = np.mean(rms, axis=0)
        force = np.abs(out["force"][:, :, settle:][alive])
        at_limit = (force >= 0.99 * out["limit"]).mean(0)
        rows.append((path, accuracy, rms, float(out["slip"][:, :, settle:][alive].mean()),
                     at_limit, 1 - out["alive"][:, :, -1].mean(), groups))  # fmt: skip

    names = [a.removesuffix("_pitch").removesuffix("_yaw") for a in config.env.actuators]
    print(
        f"# speeds {[round(v, 2) for v in speeds]} m/s x {args.episodes} episodes, last "
        f"{SECONDS - SETTLE:g} s of {SECONDS:g} s, nominal physics; fresh discriminator: 3000 "
        f"Adam steps, 70/30 split, {args.repeats} per column"
    )
    d_columns = "".join(f"held-out D accuracy, penalty {w:g} | " for w in args.penalty)
    print(f"| policy | {d_columns}joint RMS vs reference, mean (rad) | foot slip m/s | "
          "max share at torque limit | falls |")  # fmt: skip
    print("| --- |" + " ---: |" * (len(args.penalty) + 4))
    for path, accuracy, rms, slip, at_limit, falls, _ in rows:
        worst = names[int(at_limit.argmax())]
        d_cells = "".join(f"{np.mean(a):.1%}{value_range(a)} | " for a in accuracy)
        print(
            f"| {label(path)} | {d_cells}{rms.mean():.3f} | {slip:.3f} | "
            f"{at_limit.max():.1%} ({worst}) | {falls:.1%} |"
        )
    print(
        "\nPer joint, RMS of the phase-averaged angle vs the reference (rad) / share at the limit:"
    )
    print("| policy | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for path, _, rms, _, at_limit, _, _ in rows:
        cells = " | ".join(f"{r:.3f} / {t:.0%}" for r, t in zip(rms, at_limit, strict=True))
        print(f"| {label(path)} | {cells} |")
    if args.groups:
        names = list(rows[0][-1])
        print(
            "\nPer feature group: held-out accuracy of a fresh discriminator (penalty "
            f"{args.penalty[0]:g}) on that group alone / the policy's spread relative to the "
            "reference's:"
        )
        print("| policy | " + " | ".join(names) + " |")
        print("| --- |" + " ---: |" * len(names))
        for path, *_, groups in rows:
            cells = " | ".join(f"{a:.1%} / {r:.2f}" for a, r in groups.values())
            print(f"| {label(path)} | {cells} |")


if __name__ == "__main__":
    main()
