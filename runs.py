"""Run directories for training scripts: atomic checkpoint files, metrics logs and learning curves.

A run directory holds `config.json`, `metrics.jsonl` (one record per seed per update; the source
for plots), TensorBoard event files under `tb/seed<i>/`, checkpoints and `learning_curves.png`.
Nothing here knows about PPO; `ppo.py` (and any other trainer) uses these pieces.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization
from tensorboardX import SummaryWriter

from config import ConfigError


def atomic_write(path: str, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, rename: readers see old or new, whole."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
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
    """Everything a save_msgpack file holds, as nested dicts of NumPy arrays and scalars."""
    with open(path, "rb") as f:
        return serialization.msgpack_restore(f.read())


def restore_tree(path: str, template: Any) -> Any:
    """The pytree saved at `path`, in `template`'s structure; errors name a missing or odd leaf."""
    saved = load_msgpack(path)["leaves"]
    restored = []
    for name, want in _leaves_by_path(template).items():
        if name not in saved:
            raise ConfigError(f"checkpoint '{path}' has no {name}")
        have = saved[name]
        if have.shape != want.shape or have.dtype != want.dtype:
            raise ConfigError(
                f"checkpoint '{path}': {name} is {have.dtype}{list(have.shape)}, this config "
                f"needs {want.dtype}{list(want.shape)}"
            )
        restored.append(jnp.asarray(have))
    return jax.tree.unflatten(jax.tree.structure(template), restored)


class MetricsLog:
    """metrics.jsonl (NaN written as null) and one TensorBoard writer per seed."""

    def __init__(self, run_dir: str, num_seeds: int, resume_after: int | None = None):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        if resume_after is None:
            open(self.path, "w").close()
        else:  # drop records past the checkpoint: the resumed run writes them anew
            with open(self.path) as f:
                keep = [r for r in f if r.strip() and json.loads(r)["update"] <= resume_after]
            atomic_write(self.path, "".join(keep).encode())
        tb = os.path.join(run_dir, "tb")
        self.writers = [SummaryWriter(os.path.join(tb, f"seed{i}")) for i in range(num_seeds)]

    def write(self, metrics: dict[str, np.ndarray], first_update: int, batch_size: int) -> None:
        """Log (num_seeds, updates) metrics of updates first_update + 1, ... against env steps."""
        with open(self.path, "a") as f:
            for j in range(next(iter(metrics.values())).shape[1]):
                update = first_update + j + 1
                for seed, writer in enumerate(self.writers):
                    record = {"update": update, "seed": seed, "env_steps": update * batch_size}
                    for k, v in metrics.items():
                        value = float(v[seed, j])
                        record[k] = None if math.isnan(value) else value
                        if not math.isnan(value):
                            writer.add_scalar(k, value, update * batch_size)
                    f.write(json.dumps(record) + "\n")
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

    with open(metrics_path) as f:
        records = [json.loads(line) for line in f if line.strip()]
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
