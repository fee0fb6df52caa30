"""The chunk driver every learner shares: compiled chunks, progress lines, run directories.

`run(learner, config, run_dir)` trains `config.num_seeds` seeds of a learner (`ppo.LEARNER`,
`amp.LEARNER`) chunk by chunk: one compiled `train_chunk` call per progress line, metrics to
`metrics.jsonl` and TensorBoard, atomic checkpoints, a final policy and learning curves; `main`
is the command line both `ppo.py` and `amp.py` present. A learner's train state must have
`params.actor`, `actor_norm` and `update` (a saved policy is the actor and its normalizer).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import serialization

import parallel
import runs
from config import ConfigError
from wrappers import RunningStats

PANELS = ["episode/return", "episode/length", "reward/", "loss/value", "loss/policy",
          "policy/entropy", "policy/approx_kl", "policy/std"]  # fmt: skip


class Learner(NamedTuple):
    """What the driver needs of a learning algorithm."""

    script: str  # e.g. "ppo.py", for the messages
    description: str  # the --help line
    default_config: str  # path of the config file used without --config
    load_config: Callable[..., Any]  # (path, overrides) -> config
    prepare: Callable[[Any], Any]  # config -> env (or whatever make_train takes), checked early
    make_train: Callable[[Any, Any], Any]  # (config, prepared or None) -> Trainer
    panels: list[str] = PANELS  # of learning_curves.png
    groups: tuple[str, ...] = ()  # metric prefixes the progress line shows on their own line


# ---------------------------------------------------------------------------------------------
# Saved states and policies
# ---------------------------------------------------------------------------------------------


def config_json(config: Any) -> str:
    """The config as run directories and policy files keep it (config.json)."""
    return json.dumps(dataclasses.asdict(config), indent=1)


def _policy_entry(actor_params: Any, actor_norm: RunningStats) -> dict[str, Any]:
    return {"actor": actor_params, "actor_norm": serialization.to_state_dict(actor_norm)}


def save_checkpoint(path: str, config: Any, state: Any) -> None:
    """Atomically save a seed-batched TrainState, each seed's policy, and the config."""
    policies = _seed_policies(config.num_seeds, state.params.actor, state.actor_norm)
    runs.save_msgpack(path, state, config=config_json(config), policies=policies)


def _seed_policies(num_seeds: int, actor_params: Any, actor_norm: RunningStats) -> dict[str, Any]:
    """Each seed's policy entry, from actor params and normalizer with a leading seed axis."""
    return {
        str(i): _policy_entry(*jax.tree.map(lambda x, i=i: x[i], (actor_params, actor_norm)))
        for i in range(num_seeds)
    }


def save_policy(path: str, config: Any, actor_params: Any, actor_norm: RunningStats) -> None:
    """Atomically save one policy (actor params, actor normalizer, config) for load_policy."""
    policies = {"0": _policy_entry(actor_params, actor_norm)}
    runs.save_msgpack(path, config=config_json(config), policies=policies)


def save_policies(path: str, config: Any, actor_params: Any, actor_norm: RunningStats) -> None:
    """Atomically save every seed's policy (leading seed axis) for load_policy(path, seed)."""
    policies = _seed_policies(config.num_seeds, actor_params, actor_norm)
    runs.save_msgpack(path, config=config_json(config), policies=policies)


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------


def new_reward_term(leaf: str) -> bool:
    """Whether a leaf a checkpoint lacks is a reward term's value or episode sums
    (wrappers.EpisodeStats): a run saved before the environment had the term resumes with them
    at zero (the next step recomputes the value; episodes running then sum it from there)."""
    ok = bool(re.search(r"(\.|\[')(rewards|term_sums|done_term_sums)('\])?\['\w+'\]$", leaf))
    if ok and jax.process_index() == 0:
        print(f"note: the checkpoint has no {leaf} (a newer reward term): it starts at 0")
    return ok


def over_seeds(fn: Callable[..., Any], num_seeds: int) -> Callable[..., Any]:
    """`fn` mapped over a leading seed axis of its arguments and results.

    One seed gets the same axis by a squeeze and an expand instead of `jax.vmap`: vmapping the
    whole train chunk over a batch of one makes XLA's CPU program about 30% slower (measured on
    the walking config, 512 envs), while the reshape costs nothing.
    """
    if num_seeds > 1:
        return jax.vmap(fn)

    def one_seed(*args: Any) -> Any:
        out = fn(*jax.tree.map(lambda x: x[0], args))
        return jax.tree.map(lambda x: x[None], out)

    return one_seed


def init_over_seeds(init: Callable[[Any], Any], num_seeds: int) -> Callable[[Any], Any]:
    """`init` of each seed's key, stacked on a leading seed axis: a loop over seeds, not a vmap.

    Under `jax.vmap` the networks' orthogonal initialization becomes batched LAPACK QR calls,
    which on XLA's CPU backend split their batch over the intra-op thread pool and wait for it; two
    such calls running at once (independent layers) each hold a pool thread while waiting for the
    other's, and on a 2-core machine (2 pool threads) the program never finishes. Unbatched QR
    calls do not split. The results are the same as the vmap's.
    """
    if num_seeds == 1:
        return over_seeds(init, 1)

    def init_each(keys: Any) -> Any:
        states = [init(keys[i]) for i in range(num_seeds)]
        return jax.tree.map(lambda *x: jax.numpy.stack(x), *states)

    init_each.__name__ = init.__name__  # the program's name in logs, profiles and the cache
    return init_each


def compile_chunk(train_chunk: Callable, state: Any, shardings: Any, mesh: Any) -> Any:
    """`train_chunk` over the seeds of `state`, compiled for its layout on the devices of `mesh`.

    Ahead of time: an input of other types fails loudly instead of recompiling. The mesh set while
    tracing is what parallel.shard_batch splits minibatches over.
    """
    num_seeds = jax.tree.leaves(state)[0].shape[0]
    whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    fn = over_seeds(train_chunk, num_seeds)
    jitted = jax.jit(fn, in_shardings=(shardings,), out_shardings=(shardings, whole))
    with jax.set_mesh(mesh):
        return jitted.lower(state).compile()


def run(
    learner: Learner,
    config: Any,
    run_dir: str,
    env: Any = None,
    resume: bool = False,
    stop_after: int | None = None,
    profile: bool = False,
) -> Any:
    """Train `config.num_seeds` seeds chunk by chunk, writing the run directory; return the state.

    A fresh run needs `run_dir` absent or empty; `resume` continues from its checkpoint.msgpack
    and changes nothing there until that has been restored. `stop_after` stops after that many
    updates as an interrupted run would (without final files). Ctrl-C or SIGTERM saves a
    checkpoint of the last finished chunk, then raises KeyboardInterrupt(signal number). The envs
    are split over every device of every process (parallel.py); only process 0 writes `run_dir`
    and prints, and every process of a resumed run reads the checkpoint.
    """
    t0 = time.perf_counter()
    checkpoint = os.path.join(run_dir, "checkpoint.msgpack")
    writer = parallel.is_writer()
    held = runs.hold_run_dir(run_dir, resume) if writer else contextlib.nullcontext()
    with held:
        if resume and getattr(config, "init_policy", ""):
            # A resumed run's actor is in its checkpoint: the policy it started from is not read.
            trainer = learner.make_train(dataclasses.replace(config, init_policy=""), env)
        else:
            trainer = learner.make_train(config, env)
        init = init_over_seeds(trainer.init, config.num_seeds)
        keys = np.asarray(jax.random.split(jax.random.PRNGKey(config.seed), config.num_seeds))
        mesh = parallel.make_mesh()
        if config.num_envs % mesh.size:
            raise ConfigError(
                f"num_envs {config.num_envs} must be a multiple of the {mesh.size} devices"
            )
        if check_batch := getattr(trainer.env, "check_batch", None):
            check_batch(config.num_envs * config.num_seeds, jax.device_count())
        template = jax.eval_shape(init, keys)
        shardings = parallel.state_shardings(template, mesh)
        if resume:
            state = runs.restore_tree(checkpoint, template, shardings, missing_ok=new_reward_term)
        else:
            state = jax.jit(init, out_shardings=shardings)(keys)

        def save(state: Any) -> None:
            host = parallel.to_host(state)  # a collective: every process takes part
            if writer:
                save_checkpoint(checkpoint, config, host)

        if writer:
            runs.remove_temp_files(run_dir)
            runs.atomic_write(os.path.join(run_dir, "config.json"), config_json(config).encode())
        start = done = int(state.update[0])
        log = None  # only process 0 keeps the metrics
        if writer:
            log = runs.MetricsLog(run_dir, config.num_seeds, resume_after=done if resume else None)
        end = config.num_updates if stop_after is None else min(stop_after, config.num_updates)
        say = functools.partial(print, flush=True) if writer else lambda *_: None
        try:
            chunk = compile_chunk(trainer.train_chunk, state, shardings, mesh)
            parallel.wait_for_every_process("compiled")
            say(f"compiled in {time.perf_counter() - t0:.1f} s (init + train chunk)")
            t_train = time.perf_counter()
            with deferred_interrupt() as interrupted:
                while done < end:
                    profile = profile and writer
                    if profile:  # the first call after compilation is already steady state
                        jax.profiler.start_trace(os.path.join(run_dir, "profile"))
                    t = time.perf_counter()
                    # `state` moves on only once the chunk is logged: it is what Ctrl-C saves.
                    # Nothing crosses to or from the host during a chunk; the metrics go after it.
                    with jax.transfer_guard("disallow"):
                        after, metrics = jax.block_until_ready(chunk(state))
                    seconds = time.perf_counter() - t
                    if profile:
                        jax.profiler.stop_trace()
                        profile = False
                    metrics = {k: np.asarray(v) for k, v in metrics.items()}  # (seeds, updates)
                    metrics["perf/steps_per_second"] = np.full_like(
                        metrics["loss/total"],
                        config.num_seeds * config.updates_per_chunk * config.batch_size / seconds,
                    )
                    if log:
                        log.write(metrics, done, config.batch_size)
                    first, done, state = done, done + config.updates_per_chunk, after
                    now = time.perf_counter()
                    left = (now - t_train) / (done - start) * (config.num_updates - done)
                    say(progress_line(config, metrics, done, now - t0, left, learner.groups))
                    every = config.checkpoint_every
                    if done == config.num_updates or (every > 0 and done // every > first // every):
                        save(state)
                    if interrupted:
                        raise KeyboardInterrupt(interrupted[0])
        except KeyboardInterrupt:
            save(state)
            say(f"\ninterrupted: saved a checkpoint at update {done}")
            raise
        finally:
            if log:
                log.close()
        if done == config.num_updates:
            host = parallel.to_host((state.params.actor, state.actor_norm))
        if done == config.num_updates and log:
            save_policies(os.path.join(run_dir, "policy.msgpack"), config, *host)
            curves = os.path.join(run_dir, "learning_curves.png")
            runs.plot_curves(log.path, curves, learner.panels)
    return state


@contextlib.contextmanager
def deferred_interrupt() -> Any:
    """While open, Ctrl-C (SIGINT) and SIGTERM (`kill`, or a batch system's notice before its
    time limit) are noted in the yielded list rather than acted on; a second one acts at once
    (KeyboardInterrupt, or the end of the process). The training loop checks it after each chunk.

    Raised at once, a KeyboardInterrupt lands in whatever Python code runs at that moment, which
    inside a chunk can be a callback of the compiled program (MuJoCo Warp's FFI calls back into
    Python every step): there it is swallowed, and the process can crash before it saves.
    """
    hits: list[int] = []
    previous: dict[int, Any] = {}

    def note(signum: int, _frame: Any) -> None:
        hits.append(signum)
        signal.signal(signum, previous[signum])

    # Only the main thread receives signals; one already ignored (SIGINT in a background job of a
    # shell script) stays so, and so does one whose handler is not Python's.
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if handler is not None and handler is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, note)
    try:
        yield hits
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def duration(seconds: float) -> str:
    """Seconds as "42s", "3m05s" or "1h02m"."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_line(
    config: Any,
    metrics: dict[str, np.ndarray],
    done: int,
    elapsed: float,
    left: float,
    groups: tuple[str, ...] = (),
) -> str:
    """Means over seeds and the chunk's updates: time, speed, episodes, losses, each reward term."""
    with np.errstate(all="ignore"):
        m = {
            k: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
            for k, v in metrics.items()
        }
    # Per-episode values are NaN when no episode ended in the chunk: nothing to average, which
    # must not read like a blow-up. A NaN when episodes did end is printed as one.
    ended = metrics["episode/count"].sum() > 0

    def per_episode(k: str, fmt: str = ".3f") -> str:
        return format(m[k], fmt) if ended else "-"

    head = (
        f"update {done}/{config.num_updates}  env steps {done * config.batch_size:,}  "
        f"{duration(elapsed)} elapsed  ~{duration(left)} left  "
        f"{m['perf/steps_per_second']:,.0f} steps/s  return {per_episode('episode/return')}  "
        f"length {per_episode('episode/length', '.1f')}  "
    )
    if not ended:
        head += "(no episode ended)  "
    if m.get("env/nan", 0.0) > 0:  # any share of steps whose physics turned NaN / inf
        head += f"non-finite physics {m['env/nan']:.1%} of steps  "
    head += (
        f"loss/policy {m['loss/policy']:.4f}  loss/value {m['loss/value']:.4f}  "
        f"entropy {m['policy/entropy']:.3f}  approx_kl {m['policy/approx_kl']:.4f}"
    )
    if config.num_seeds > 1:
        head += f"  (mean of {config.num_seeds} seeds; per seed in metrics.jsonl)"
    lines = [head]
    terms = "  ".join(f"{k} {per_episode(k)}" for k in m if k.startswith("reward/"))
    lines += [terms] if terms else []
    for group in groups:  # e.g. "amp/": the discriminator's numbers
        lines.append("  ".join(f"{k} {v:.3f}" for k, v in m.items() if k.startswith(group)))
    return "\n    ".join(lines)


def compile_cache_dir() -> str:
    """The default persistent compilation cache: $JAX_COMPILATION_CACHE_DIR, else the user's."""
    user_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    default = os.path.join(user_cache, "wildrobot-jax", "jax")
    return os.environ.get("JAX_COMPILATION_CACHE_DIR") or default


def use_compile_cache(path: str) -> None:
    """Keep compiled programs in `path` for the next start ("off": compile every time).

    Call before anything compiles: JAX settles on a cache at its first compilation.
    """
    if path == "off":
        jax.config.update("jax_enable_compilation_cache", False)
    else:
        jax.config.update("jax_compilation_cache_dir", path)


def main(learner: Learner, argv: list[str] | None = None) -> None:
    """The command line of a learner script: parse, check, then train in a run directory."""
    parser = argparse.ArgumentParser(
        prog=learner.script,
        description=learner.description,
        epilog="Overrides: any config field as key=value, e.g. num_envs=8 env.noise.gyro=0.1",
    )
    parser.add_argument("--config", default=learner.default_config, help="TOML or JSON file")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument("--run-dir", help="a new or empty directory instead of runs/<name>-<time>")
    parser.add_argument("--num-seeds", type=int, help="same as num_seeds=N")
    parser.add_argument("--profile", action="store_true", help="trace one chunk to RUN_DIR/profile")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        metavar="N",
        help="CPU devices to split the envs over (default: two per core, as many as divide "
        "num_envs, at most 8; ignored on a GPU)",
    )
    parser.add_argument(
        "--compile-cache",
        metavar="DIR",
        default=compile_cache_dir(),
        help="compiled programs kept for the next start, or 'off' (default: %(default)s; "
        "$JAX_COMPILATION_CACHE_DIR sets it)",
    )
    hosts = parser.add_argument_group(
        "several processes (one per host or GPU; see README, Scaling out)",
        "each process runs the same command; values not given come from SLURM, Open MPI or "
        "$JAX_COORDINATOR_ADDRESS",
    )
    hosts.add_argument("--distributed", action="store_true", help="join a multi-process run")
    hosts.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    hosts.add_argument("--num-processes", type=int, metavar="N")
    hosts.add_argument("--process-id", type=int, metavar="I", help="0 .. N-1; 0 writes the run")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_intermixed_args(argv)  # overrides before, between or after the flags
    distributed = bool(
        args.distributed or args.coordinator or args.num_processes or args.process_id is not None
    )
    overrides = args.overrides + (
        [f"num_seeds={args.num_seeds}"] if args.num_seeds is not None else []
    )
    try:
        path = os.path.join(args.resume, "config.json") if args.resume else args.config
        config = learner.load_config(path, overrides)  # touches no device
        # Before anything starts a JAX backend: the device count and joining other processes.
        count = parallel.cpu_device_count(config.num_envs, args.cpu_devices, distributed)
        parallel.use_cpu_devices(count)
        if distributed:
            parallel.initialize(args.coordinator, args.num_processes, args.process_id)
        use_compile_cache(args.compile_cache)
        env = learner.prepare(config)  # loads the model and resolves names: errors come first
        run_dir = args.resume or args.run_dir
        if not run_dir:  # a new directory, "-2" etc. added if another run took the name
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_dir = os.path.join("runs", f"{config.name}-{stamp}")
            # Only process 0 writes it; the others never look (a fresh run reads nothing).
            run_dir = runs.new_run_dir(run_dir) if parallel.is_writer() else run_dir
    except (ConfigError, OSError) as e:
        parser.error(str(e))
    if parallel.is_writer():
        n, p = jax.device_count(), jax.process_count()
        layout = f"{n} device{'s' if n > 1 else ''} in {p} process{'es' if p > 1 else ''}"
        print(f"run directory {run_dir}: {config.num_updates} updates of "
              f"{config.batch_size:,} steps on {layout}")  # fmt: skip
        if getattr(config, "init_policy", "") and not args.resume:
            print(f"actor from {config.init_policy}, held for {config.critic_warmup} updates")
    try:
        run(learner, config, run_dir, env, resume=bool(args.resume), profile=args.profile)
    except ConfigError as e:  # a run directory in use, a checkpoint this config cannot take, ...
        parser.error(str(e))
    except KeyboardInterrupt as e:
        if not parallel.is_writer():
            pass
        elif os.path.exists(os.path.join(run_dir, "checkpoint.msgpack")):
            print(f"continue with: python {learner.script} --resume {run_dir}")
        else:
            print(f"stopped before anything was saved: nothing to resume in {run_dir}")
        signum = e.args[0] if e.args and isinstance(e.args[0], int) else signal.SIGINT
        raise SystemExit(128 + signum) from None  # as a shell reports a Ctrl-C (130) or a kill
