"""Run directories for training scripts: atomic checkpoint files, metrics logs and learning curves.

A run directory holds `config.json`, `metrics.jsonl` (one record per seed per update; the source
for plots and for the TensorBoard event files under `tb/seed<i>/`), checkpoints and
`learning_curves.png`. One process at a time holds a run directory (`hold_run_dir`); a fresh run
never writes into a directory that holds anything. Nothing here knows about PPO; `ppo.py` (and any
other trainer) uses these pieces.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import itertools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization
from tensorboardX import SummaryWriter

from config import ConfigError

TEMP = ".tmp"  # atomic_write's temporary files are ".<name>.<random>.tmp"


def new_run_dir(prefix: str) -> str:
    """Create and return `prefix`, or `prefix-2`, `prefix-3`, ... when taken: never a shared one."""
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    for i in itertools.count(1):
        path = prefix if i == 1 else f"{prefix}-{i}"
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)  # atomic: of two runs started in the same second, one gets "-2"
            return path
    raise AssertionError("unreachable")


@contextlib.contextmanager
def hold_run_dir(path: str, resume: bool) -> Iterator[None]:
    """Hold `path` for one process: a fresh run needs it empty or absent, a resume needs it there.

    The lock (flock on the directory, released when the process dies however it dies) keeps a
    second process out, and makes the temporary files found inside leftovers of a killed save.
    """
    if resume and not os.path.isdir(path):
        raise ConfigError(f"no run directory '{path}' to resume")
    os.makedirs(path, exist_ok=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"run directory '{path}' is in use by another process") from None
        if not resume and os.listdir(path):
            raise ConfigError(
                f"run directory '{path}' is not empty: continue that run with --resume {path}, "
                "or give a new --run-dir"
            )
        yield
    finally:
        os.close(fd)


def remove_temp_files(run_dir: str) -> None:
    """Delete atomic_write temporaries that a killed process left (call while holding the dir)."""
    for path in glob.glob(os.path.join(glob.escape(run_dir), f".*{TEMP}")):
        os.unlink(path)


def atomic_write(path: str, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, rename: readers see old or new, whole."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=TEMP)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _leaves_by_path(tree: Any) -> dict[str, Any]:
    """Leaves keyed by their path in the tree, e.g. ".params.actor['params']['mean']['kernel']"."""
    return {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def save_msgpack(path: str, tree: Any = None, **entries: Any) -> None:
    """Atomically save a pytree's leaves by path (as "leaves") and named msgpack-able entries."""
    payload = dict(entries)
    if tree is not None:
        payload["leaves"] = {k: np.asarray(x) for k, x in _leaves_by_path(tree).items()}
    atomic_write(path, serialization.msgpack_serialize(jax.device_get(payload)))


def load_msgpack(path: str) -> dict[str, Any]:
    """Everything a save_msgpack file holds, as nested dicts of NumPy arrays and scalars.

    A missing file raises FileNotFoundError; a truncated or foreign one, ConfigError naming it.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        payload = serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises errors of many types for a cut-short or foreign file
        raise ConfigError(f"'{path}' is not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"'{path}' is not a readable checkpoint (no entries)")
    return payload


def restore_tree(
    path: str,
    template: Any,
    shardings: Any = None,
    missing_ok: Callable[[str], bool] = lambda name: False,
) -> Any:
    """The pytree saved at `path`, in `template`'s structure; errors name the file and any leaf.

    A leaf the file lacks is an error unless `missing_ok(its path)`: then it starts at zero.

    With `shardings` (a pytree like `template`), each leaf becomes a global array laid out by
    its sharding, which may span processes: every process reads the whole file and keeps its part,
    so a checkpoint saved on any number of devices resumes on any other.
    """
    try:
        saved = load_msgpack(path).get("leaves")
    except FileNotFoundError:
        raise ConfigError(f"no checkpoint '{path}'") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"'{path}' is not a readable checkpoint (no saved state)")
    restored = []
    places = jax.tree.leaves(shardings) if shardings is not None else None
    for i, (name, want) in enumerate(_leaves_by_path(template).items()):
        if name not in saved and not missing_ok(name):
            raise ConfigError(f"checkpoint '{path}' has no {name}")
        have = np.asarray(saved[name]) if name in saved else np.zeros(want.shape, want.dtype)
        if have.shape != want.shape or have.dtype != want.dtype:
            raise ConfigError(
                f"checkpoint '{path}': {name} is {have.dtype}{list(have.shape)}, this config "
                f"needs {want.dtype}{list(want.shape)}"
            )
        if places is None:
            restored.append(jnp.asarray(have))
        else:
            restored.append(jax.make_array_from_callback(have.shape, places[i], have.__getitem__))
    return jax.tree.unflatten(jax.tree.structure(template), restored)


def read_records(path: str) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; a line cut short by a killed process is left out."""
    records = []
    with contextlib.suppress(FileNotFoundError), open(path) as f:
        for line in f:
            with contextlib.suppress(json.JSONDecodeError):
                records.append(json.loads(line))
    return records


class MetricsLog:
    """metrics.jsonl (NaN written as null) and one TensorBoard writer per seed."""

    def __init__(self, run_dir: str, num_seeds: int, resume_after: int | None = None):
        """A fresh log, or on resume the records up to update `resume_after` and no later ones."""
        self.path = os.path.join(run_dir, "metrics.jsonl")
        # Records past the checkpoint go: the resumed run writes them anew.
        records = [] if resume_after is None else read_records(self.path)
        kept = [r for r in records if r["update"] <= resume_after]
        atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in kept).encode())
        # The event files are rebuilt from the kept records, since the stopped run's files hold
        # the updates past the checkpoint too and TensorBoard would show those twice.
        tb = os.path.join(run_dir, "tb")
        shutil.rmtree(tb, ignore_errors=True)
        self.writers = [SummaryWriter(os.path.join(tb, f"seed{i}")) for i in range(num_seeds)]
        for record in kept:
            self._add_scalars(record)
        for writer in self.writers:
            writer.flush()

    def _add_scalars(self, record: dict[str, Any]) -> None:
        writer = self.writers[record["seed"]]
        for k, v in record.items():
            if k not in ("update", "seed", "env_steps") and v is not None:
                writer.add_scalar(k, v, record["env_steps"])

    def write(self, metrics: dict[str, np.ndarray], first_update: int, batch_size: int) -> None:
        """Log (num_seeds, updates) metrics of updates first_update + 1, ... against env steps."""
        with open(self.path, "a") as f:
            for j in range(next(iter(metrics.values())).shape[1]):
                update = first_update + j + 1
                for seed in range(len(self.writers)):
                    record = {"update": update, "seed": seed, "env_steps": update * batch_size}
                    for k, v in metrics.items():
                        value = float(v[seed, j])
                        record[k] = None if math.isnan(value) else value
                    f.write(json.dumps(record) + "\n")
                    self._add_scalars(record)
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def plot_curves(metrics_path: str, png_path: str, panels: list[str]) -> None:
    """A panel per metric name (a name ending in "/" gathers its group), a line per seed."""
    import matplotlib  # here, so that importing this module never picks a display backend

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_records(metrics_path)
    if not records:
        return
    columns = math.ceil(len(panels) / 2)
    fig, axes = plt.subplots(2, columns, figsize=(4.5 * columns, 8), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)  # enough distinct colors for reward terms
        keys = [
            k for k in records[0] if k == panel or (panel.endswith("/") and k.startswith(panel))
        ]
        for seed in sorted({r["seed"] for r in records}):
            rows = [r for r in records if r["seed"] == seed]
            for k in keys:
                values = [math.nan if r.get(k) is None else r[k] for r in rows]
                label = k.removeprefix(panel) if panel.endswith("/") and seed == 0 else None
                ax.plot([r["env_steps"] for r in rows], values, label=label)
        ax.set_title(panel.rstrip("/"))
        ax.set_xlabel("env steps")
        if panel.endswith("/") and keys:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(png_path, dpi=80)
    plt.close(fig)
