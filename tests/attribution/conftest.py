"""Fixtures: tiny networks of every head, and a grade head that learned the phantom rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from multitask_dr.datasets.synthetic.grade import Phantom
from multitask_dr.datasets.synthetic.masks import lesion_masks
from multitask_dr.datasets.synthetic.render import render_phantom
from multitask_dr.datasets.synthetic.sampling import image_rng, sample_grade
from multitask_dr.models.network import MultiTaskNet, NetworkConfig

TINY = {"encoder": "tu-test_resnet", "decoder_channels": [16, 16, 8, 8, 8]}
UNIFORM_GRADES = (0.2, 0.2, 0.2, 0.2, 0.2)


def tiny_net(conditioning: str, grade_output: str = "softmax", seed: int = 0) -> MultiTaskNet:
    torch.manual_seed(seed)
    return MultiTaskNet(
        NetworkConfig(**TINY, conditioning=conditioning, grade_output=grade_output)
    ).eval()


def phantoms(split: str, count: int, size: int) -> list[Phantom]:
    out = []
    for index in range(count):
        rng = image_rng(0, "attribution-tests", split, index)
        out.append(render_phantom(size, sample_grade(rng, UNIFORM_GRADES), rng))
    return out


def as_tensors(batch: list[Phantom]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(np.stack([p.image for p in batch])).permute(0, 3, 1, 2)
    masks = torch.from_numpy(np.stack([lesion_masks(p) for p in batch])).permute(0, 3, 1, 2)
    grades = torch.tensor([p.grade for p in batch])
    return (images.float() / 255.0 - 0.5) / 0.25, masks.float(), grades


@dataclass
class RuleModel:
    """A bottleneck head trained on ground-truth lesion maps, and held-out phantoms."""

    net: MultiTaskNet
    test: list[Phantom]
    images: torch.Tensor
    masks: torch.Tensor
    grades: torch.Tensor


@pytest.fixture(scope="session")
def rule_model() -> RuleModel:
    """Learn the phantom grade rule from ground-truth maps (~10 s on one CPU thread).

    The encoder stays random and frozen: the bottleneck head is trained for 200 Adam steps
    through ``grade_from_lesions`` with the true lesion masks as the maps, so the only thing it
    can learn from is the lesions, and the rule the phantoms follow is known.
    """
    torch.set_num_threads(1)
    size = 64
    train_images, train_masks, train_grades = as_tensors(phantoms("train", 300, size))
    test = phantoms("test", 100, size)
    test_images, test_masks, test_grades = as_tensors(test)
    torch.manual_seed(0)
    net = MultiTaskNet(NetworkConfig(**TINY, conditioning="bottleneck", head_dropout=0.0)).eval()
    with torch.no_grad():
        deep = net.encoder(train_images)[-1]
    optimizer = torch.optim.Adam(net.grade_head.parameters(), lr=0.03)
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        batch = torch.randint(0, len(deep), (32,), generator=generator)
        logits, _ = net.grade_from_lesions([deep[batch]], train_masks[batch])
        loss = F.cross_entropy(logits, train_grades[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return RuleModel(net, test, test_images, test_masks, test_grades)
