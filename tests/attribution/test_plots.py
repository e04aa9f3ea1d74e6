import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from multitask_dr.attribution import (  # noqa: E402
    ablate_lesion_maps,
    ablation_curves,
    encode,
    instance_attribution,
)
from multitask_dr.attribution.plots import (  # noqa: E402
    lesion_overlay,
    plot_ablation_curves,
    plot_contributions,
    plot_instances,
    plot_overlay,
)

from .conftest import tiny_net  # noqa: E402


def test_overlay_colours_only_lesion_pixels():
    image = np.full((8, 8, 3), 100, np.uint8)
    maps = np.zeros((4, 8, 8))
    maps[1, 2, 2] = 1.0
    out = lesion_overlay(image, maps)
    assert out.shape == (8, 8, 3) and out.dtype == np.float32
    assert np.allclose(out[0, 0], 100 / 255) and out[2, 2, 1] > out[2, 2, 0]


def test_every_figure_draws(tmp_path):
    net = tiny_net("bottleneck")
    maps = torch.zeros(1, 4, 32, 32)
    maps[0, 1, 4:8, 4:8] = 0.9
    maps[0, 3, 20:24, 20:26] = 0.8
    evidence = encode(net, torch.randn(1, 3, 32, 32), maps)
    image = np.zeros((32, 32, 3), np.uint8)
    fig, axes = plt.subplots(1, 4, figsize=(12, 3))
    plot_overlay(image, maps[0], "overlay", ax=axes[0])
    plot_contributions(ablate_lesion_maps(net, evidence).ranking(0), "bars", ax=axes[1])
    plot_ablation_curves(ablation_curves(net, evidence, scales=[1, 0.5, 0]), ax=axes[2])
    plot_instances(image, instance_attribution(net, evidence), ax=axes[3])
    fig.savefig(tmp_path / "figure.png")
    plt.close(fig)
    assert (tmp_path / "figure.png").stat().st_size > 1000
