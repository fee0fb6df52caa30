"""Data parallelism over every device and host: the mesh, the train state's shardings, start-up.

One training program runs on all devices of all processes: a 1-D mesh over `jax.devices()`, the
envs (every `VecState` leaf with a num_envs axis) split over it, everything else (parameters,
optimizer state, normalizers, keys, AMP's discriminator and replay buffer) replicated. This is
`jax.jit` with shardings, not `shard_map`: the program stays the one-device program, so a run on D
devices draws the same random numbers and the same minibatches as on one and agrees with it up to
float rounding of the reductions, and XLA inserts the collectives (the gradient all-reduce, the
normalizer sums, the minibatch gather) itself. `shard_batch` tells it which axis of a batch to
split; on one device nothing here changes the program. (The one `shard_map` is around a MuJoCo
Warp env step, whose single call over the batch XLA cannot split: `wrappers.per_device`.)

    python ppo.py                                                   # every local device
    python ppo.py --coordinator HOST:1234 --num-processes 2 --process-id 0   # one process per host
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

import jax
import numpy as np
from jax._src import distributed as jax_distributed  # the coordination client: no public handle
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from config import ConfigError
from wrappers import VecState

AXIS = "envs"  # the mesh axis the envs (and each minibatch) are split over


# CPU devices per core chosen by default, and the most chosen. On a 2-core machine 4 devices train
# faster than 2 (and 2 faster than 1); 8 are slower than 4 (README, Scaling out). Larger machines
# were not measured: more devices mean smaller per-device batches and more collectives.
CPU_DEVICES_PER_CORE = 2
MAX_CPU_DEVICES = 8


def cpu_device_count(num_envs: int, requested: int | None = None, distributed: bool = False) -> int:
    """How many CPU devices a training process splits its `num_envs` envs over.

    `requested` (`--cpu-devices`) wins. Else a count already set in the environment
    (`--xla_force_host_platform_device_count` in $XLA_FLAGS, or $JAX_NUM_CPU_DEVICES). Else, in a
    single-process run, two devices per core this process may use (at most MAX_CPU_DEVICES),
    lowered to the largest count that divides `num_envs`: one device keeps only about 1.4 of 2
    cores busy, and on a 2-core machine 4 devices train 1.42x as fast as one at 1024 envs, 2
    devices 1.30x (README, Scaling out). A process of a multi-process run takes one, unless told:
    its host may hold others. Only the CPU backend reads this; on a GPU the GPUs are the devices.
    """
    if requested is not None:
        if requested < 1 or num_envs % requested:
            raise ConfigError(
                f"--cpu-devices {requested} must be at least 1 and divide num_envs {num_envs}"
            )
        return requested
    if preset := preset_device_count():
        return preset
    if distributed:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = min(CPU_DEVICES_PER_CORE * (cores or 1), MAX_CPU_DEVICES)
    while num_envs % count:
        count -= 1
    return count


def use_cpu_devices(count: int) -> None:
    """Give JAX's CPU backend `count` devices, a thread pool to match and one-thread matmuls,
    before JAX starts it.

    Called later (from a program that has used JAX already), it changes nothing: the devices JAX
    started with stay.
    """
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # "should be updated before backends are initialized"
        return
    size_cpu_thread_pool(count)
    single_thread_matmuls()


def size_cpu_thread_pool(devices: int) -> None:
    """Give XLA's CPU thread pool a spare thread per CPU device; call before JAX starts a backend.

    jaxlib's batched LAPACK calls (the physics' Cholesky factorization, QR in orthogonal
    initialization) split their batch over that pool and wait for the pieces from a pool thread.
    When as many such calls run at once as the pool has threads (2 on a 2-core machine: one per
    device of 2 CPU devices), every thread waits and none works: the program hangs. XLA sizes the
    pool from $NPROC when set (else from the core count); this sets it to cores + CPU devices,
    unless already set. One CPU device needs nothing.
    """
    if devices > 1 and "NPROC" not in os.environ:
        os.environ["NPROC"] = str((os.cpu_count() or 1) + devices)


def single_thread_matmuls() -> None:
    """Run each matmul of the CPU backend on one thread; call before JAX starts a backend.

    XLA's CPU backend splits large matmuls (the networks' layers over a batch) over its thread
    pool. On a 2-core machine that costs more than it gives: with the split turned off the walking
    config trains 6% faster on one device and 7% faster on two at 1024 envs, with the same numbers
    (README, Scaling out). A setting of `--xla_cpu_multi_thread_eigen` in $XLA_FLAGS is kept.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "--xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


def preset_device_count() -> int | None:
    """The CPU device count JAX's config ($JAX_NUM_CPU_DEVICES) or $XLA_FLAGS sets, if any."""
    if jax.config.jax_num_cpu_devices > 0:
        return jax.config.jax_num_cpu_devices
    return flag_device_count()


def flag_device_count() -> int | None:
    """The CPU device count `--xla_force_host_platform_device_count` in $XLA_FLAGS sets, if any."""
    found = re.search(
        r"--xla_force_host_platform_device_count=(\d+)", os.environ.get("XLA_FLAGS", "")
    )
    return int(found.group(1)) if found else None


def initialize(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Join a multi-process run; values left None come from SLURM, Open MPI or $JAX_COORDINATOR_*.

    Call before anything touches a device: JAX fixes its devices at the first use.
    """
    # CPU processes need a collectives backend to reduce across each other (GPUs use NCCL).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes, process_id)


def wait_for_every_process(name: str, minutes: float = 30.0) -> None:
    """Wait until every process of a multi-process run gets here (nothing to do in a single one).

    Call it after compiling, before the first collective: the processes finish compiling at
    different times, and a CPU collective gives up on a process that has not joined in 30 s
    (gloo's context set-up: "GetKeyValue() timed out"). This barrier goes through JAX's
    coordination service, which waits as long as told.
    """
    if jax.process_count() > 1:  # every process counts its barriers alike: the ids match
        barrier = f"{name}:{next(_barriers)}"
        jax_distributed.global_state.client.wait_at_barrier(barrier, int(minutes * 60_000))


_barriers = itertools.count()


def make_mesh() -> Mesh:
    """The 1-D mesh over every device of every process."""
    return Mesh(np.array(jax.devices()), (AXIS,))


def is_writer() -> bool:
    """Whether this process writes the run directory and prints (process 0 of a run)."""
    return jax.process_index() == 0


def state_shardings(template: Any, mesh: Mesh, env_axis: int = 1) -> Any:
    """Shardings of a train state: VecStates split on `env_axis` (after the seeds), rest whole."""
    whole = NamedSharding(mesh, PartitionSpec())
    envs = NamedSharding(mesh, PartitionSpec(*[None] * env_axis, AXIS))

    def place(node: Any) -> Any:
        if isinstance(node, VecState):  # its key is one per seed, not per env
            return jax.tree.map(lambda _: envs, node).replace(key=whole)
        return jax.tree.map(lambda _: whole, node)

    return jax.tree.map(place, template, is_leaf=lambda x: isinstance(x, VecState))


def shard_batch(x: jax.Array, axis: int = 0) -> jax.Array:
    """`x` with `axis` split over the mesh set by `jax.set_mesh`; `x` itself without one.

    Where the learner cuts a minibatch, so that each device takes the gradient of its slice and
    XLA all-reduces the sum, instead of every device repeating the whole minibatch.
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or AXIS not in mesh.axis_names or mesh.shape[AXIS] == 1:
        return x
    spec = [None] * x.ndim
    spec[axis] = AXIS
    return jax.lax.with_sharding_constraint(x, PartitionSpec(*spec))


def to_host(tree: Any) -> Any:
    """NumPy copies of a (possibly multi-process) pytree; every process must call it."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return multihost_utils.process_allgather(tree, tiled=True)


def from_host(tree: Any, shardings: Any) -> Any:
    """Global arrays with `shardings` from full NumPy copies that every process holds."""

    def put(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree, shardings)
