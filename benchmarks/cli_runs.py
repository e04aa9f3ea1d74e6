"""What the CLI-driven benchmarks share: config files and overrides, CSV metrics, summaries.

Each benchmark runs the real ``multitask-dr`` CLI in-process on a config from ``configs/`` (plus
overlays and ``--set`` overrides, on the config the CLI composes from them), logs to a CSV logger
and reads the metrics back from it.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def parent_node(config: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    """The dict holding ``"a.b"``'s last key (``config["a"]``, created on the way) and that key.

    A number indexes a list on the way: ``data.init_args.segmentation.0.init_args.patch_size``
    is the first lesion source's patch size.
    """
    *parents, last = dotted.split(".")
    node: Any = config
    for key in parents:
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                # A mistyped override: one line, no traceback.
                raise SystemExit(
                    f"--set {dotted}: {key!r} is not an index of a {len(node)}-item list"
                )
            node = node[int(key)]
        else:
            node = node.setdefault(key, {})
    return node, last


def set_key(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``config["a"]["b"]`` for ``"a.b"``, creating dicts on the way."""
    node, last = parent_node(config, dotted)
    node[last] = value


def load_configs(paths: list[Path]) -> dict[str, Any]:
    """The config ``multitask-dr fit --config P1 --config P2 ...`` runs, every key spelt out.

    Composed by the CLI itself (``--print_config``): ``configs/base.yaml``, then each path in
    order, as a run reads them.
    """
    from multitask_dr.cli import main as cli_main

    args = ["fit", *(arg for path in paths for arg in ("--config", str(path))), "--print_config"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            status = cli_main(args)
        except SystemExit as done:  # --print_config exits once it has printed
            status = done.code
    if status:
        raise ValueError(f"{' + '.join(map(str, paths))}: not a valid config (status {status})")
    return yaml.safe_load(printed.getvalue())


def same_run(
    saved: Path,
    config: dict[str, Any],
    settings: Callable[[dict[str, Any]], Any] = lambda config: config,
) -> bool:
    """Whether the run config file ``saved`` and ``config`` agree on ``settings`` of them.

    Compared as written first. Where they differ, both are compared again as the CLI composes
    them (``load_configs``), so a setting spelt out in one and left to its default in the other
    is the same setting: a callback appended with ``--set trainer.callbacks+=...`` before the
    config adopted it, which the composed config spells out with every default.
    """
    if settings(yaml.safe_load(saved.read_text())) == settings(config):
        return True
    # Beside the saved one, so that relative paths in both read alike.
    current = saved.with_name(f"{saved.stem}.current.yaml")
    current.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        return settings(load_configs([saved])) == settings(load_configs([current]))
    finally:
        current.unlink()


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy with ``KEY=VALUE`` set and ``KEY+=VALUE`` appended (values read as YAML)."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, _, value = item.partition("=")
        if key.endswith("+"):  # KEY+=VALUE appends to a list (e.g. a callback)
            node, last = parent_node(config, key[:-1])
            if node.get(last) is None:  # absent, or null in YAML (e.g. trainer.callbacks)
                node[last] = []
            node[last].append(yaml.safe_load(value))
        else:
            set_key(config, key, yaml.safe_load(value))
    return config


def lesion_sources(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The config's lesion-source entries (a list under ``segmentation``, or one; none when
    the data is a single grading datamodule)."""
    sources = config["data"].get("init_args", {}).get("segmentation") or []
    return sources if isinstance(sources, list) else [sources]


def model_checkpoints(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``ModelCheckpoint`` entries of a composed config, as the CLI builds them.

    The ``checkpoint`` group itself (the best one), then ``last_checkpoint`` as a copy with the
    folder it follows (``checkpoint``'s), then any listed under ``trainer.callbacks``.
    """
    best, last = config.get("checkpoint"), config.get("last_checkpoint")
    found = [best] if best else []
    if last:
        dirpath = (best or {}).get("init_args", {}).get("dirpath")
        found.append(last | {"init_args": last.get("init_args", {}) | {"dirpath": dirpath}})
    callbacks = config["trainer"].get("callbacks") or []
    return found + [cb for cb in callbacks if cb["class_path"].endswith("ModelCheckpoint")]


def checkpoint_callback(config: dict[str, Any]) -> dict[str, Any]:
    """The config's monitored ``ModelCheckpoint`` entry (the benchmark needs exactly one)."""
    found = [cb for cb in model_checkpoints(config) if cb.get("init_args", {}).get("monitor")]
    if len(found) != 1:
        raise ValueError("the config needs exactly one monitored ModelCheckpoint callback")
    return found[0]


def route_outputs(config: dict[str, Any], out: Path) -> None:
    """CSV logging under ``out/fit``, checkpoints in ``out/ckpt`` (the monitored one ``best``)."""
    trainer = config["trainer"]
    trainer["logger"] = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(out), "name": "fit", "version": 0},
    }
    trainer["enable_progress_bar"] = False
    trainer["enable_model_summary"] = False
    # last_checkpoint follows checkpoint's folder.
    config["checkpoint"].setdefault("init_args", {})["dirpath"] = str(out / "ckpt")
    for callback in trainer.get("callbacks") or []:
        if callback["class_path"].endswith("ModelCheckpoint"):
            callback.setdefault("init_args", {})["dirpath"] = str(out / "ckpt")
    checkpoint_callback(config)["init_args"]["filename"] = "best"


def read_rows(path: Path) -> list[dict[str, float]]:
    """Non-empty numeric cells of a CSVLogger ``metrics.csv``."""
    with path.open() as handle:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(handle)
        ]


def mean_std(values: list[float]) -> str:
    """``mean ± sample std`` with three decimals."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"
