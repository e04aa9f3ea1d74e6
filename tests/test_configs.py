"""Every YAML in configs/ must parse through the real CLI (catches renamed arguments)."""

from pathlib import Path

import pytest
import yaml

from multitask_dr.cli import main

CONFIGS = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml")
    if "sweeps" not in p.parts  # sweep files are read by `wandb sweep`, not by the CLI
)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_parses(config, capsys):
    args = ["fit", "--config", str(config), "--print_config"]
    if config.name == "demo_csv.yaml":  # an overlay: it needs the demo underneath
        args = ["fit", "--config", str(config.parent / "demo.yaml"), *args[1:]]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["encoder"]
    assert printed["data"]["class_path"].startswith("multitask_dr.datamodules.")
