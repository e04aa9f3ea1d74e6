"""One tiny joint model trained once per session through the CLI (W&B offline, media on).

``bottleneck`` head, so per-lesion contributions exist; the W&B media tests read its run
folder and the predict tests predict from its checkpoint (fixtures, see ``tests/conftest.py``).
"""

import warnings
from pathlib import Path

import pytest
import yaml

from multitask_dr.cli import main
from tests.cli_config import tiny_joint_config


def joint_config(root: Path, out: Path) -> dict:
    """Tiny joint model, one epoch of two steps, W&B + media + checkpoint."""
    callbacks = [
        {
            "class_path": "lightning.pytorch.callbacks.LearningRateMonitor",
            "init_args": {"logging_interval": "epoch"},
        },
        {"class_path": "multitask_dr.callbacks.WandbMedia", "init_args": {"num_images": 2}},
    ]
    return tiny_joint_config(root, out, conditioning="bottleneck", callbacks=callbacks)


def run_cli(args: list[str]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main(args)


@pytest.fixture(scope="session")
def wandb_env(tmp_path_factory):
    """Offline W&B whose caches and artifact staging stay in a temporary folder."""
    home = tmp_path_factory.mktemp("wandb_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
            patch.setenv(name, str(home / name.lower()))
        yield patch


@pytest.fixture(scope="session")
def fitted(synthetic_root, tmp_path_factory, wandb_env):
    """``(config path, output folder)`` of one finished ``fit``."""
    out = tmp_path_factory.mktemp("fit")
    config = out / "joint.yaml"
    config.write_text(yaml.safe_dump(joint_config(synthetic_root, out)))
    assert run_cli(["fit", "--config", str(config)]) == 0
    return config, out
