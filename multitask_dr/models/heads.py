"""Grade heads, one per conditioning mode.

Every head maps ``(pooled, deep, lesion_probs)`` to grade logits and, when the decomposition is
exact, per-lesion contributions:

- ``none``: pooled encoder features -> MLP.
- ``stats``: pooled features + :class:`LesionFeatures` of the predicted lesion maps -> MLP.
- ``lesion_pooled``: pooled features + encoder features averaged under each lesion map
  (one vector per lesion type) -> MLP.
- ``bottleneck``: each lesion type's statistics and lesion-pooled features -> its own linear
  map (that lesion's evidence), combined by ``combine``:

  - ``sum``: ``logits = sum over lesions of contributions + bias`` exactly (additive; every
    lesion type adds to the grade);
  - ``max``: a smooth maximum (log-sum-exp) over the lesions' evidence, so the most severe
    lesion decides, as in ICDR grading ("any haemorrhage in 4 quadrants" -> severe, whatever
    else is there). For ``softmax`` each grade's logit is ``logsumexp(bias_g, evidence_1g,
    ..., evidence_Lg)`` (the bias is the "no lesion" evidence); for ``coral`` the shared
    severity is ``logsumexp`` of the lesions' severities, then minus each rank's threshold.
    Erasing a lesion that does not decide the grade then changes it little, which an additive
    head cannot express (there every lesion present carries a share of the grade). No exact
    additive decomposition: contributions are ``None``; explain it by ablation.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multitask_dr.models.lesion_features import LesionFeatures
from multitask_dr.models.ordinal import GradeOutput, num_outputs, output_layer

Conditioning = Literal["none", "stats", "lesion_pooled", "bottleneck"]
CONDITIONINGS: tuple[str, ...] = ("none", "stats", "lesion_pooled", "bottleneck")
Combine = Literal["sum", "max"]


def pool_under_lesions(deep: Tensor, probs: Tensor) -> Tensor:
    """Average deep features under each lesion map.

    Args:
        deep: ``(B, C, h, w)`` encoder features.
        probs: ``(B, L, H, W)`` lesion probabilities (resized to ``h, w`` by area averaging).

    Returns:
        ``(B, L, C)``; the ``+1`` in the denominator shrinks an absent lesion's vector to 0.
    """
    weights = F.adaptive_avg_pool2d(probs, deep.shape[-2:])
    total = weights.sum(dim=(2, 3)).unsqueeze(-1)
    return torch.einsum("blhw,bchw->blc", weights, deep) / (total + 1.0)


def combine_evidence(
    evidence: Tensor, bias: Tensor, combine: Combine, output: GradeOutput
) -> Tensor:
    """Grade logits from per-lesion evidence (the bottleneck head's last step).

    Args:
        evidence: ``(B, L, K)`` per-lesion terms; ``K = G`` for softmax, ``1`` for coral.
        bias: ``(G,)`` or ``(G - 1,)``.
        combine: ``sum`` (``sum_l evidence + bias``) or ``max`` (smooth maximum over lesions:
            ``logsumexp(bias, evidence_1, ..., evidence_L)`` per grade for softmax, the bias
            being the evidence of "no lesion"; ``logsumexp_l(evidence_l) + bias`` for coral,
            whose bias holds the rank thresholds).
        output: ``softmax`` or ``coral``.

    Returns:
        ``(B, G)`` or ``(B, G - 1)`` logits.
    """
    if combine == "sum":
        return evidence.sum(dim=1) + bias
    if output == "coral":
        return torch.logsumexp(evidence, dim=1) + bias
    background = bias.expand(evidence.shape[0], 1, -1)
    return torch.logsumexp(torch.cat([background, evidence], dim=1), dim=1)


def mlp(in_features: int, hidden: int, out: nn.Module, dropout: float) -> nn.Sequential:
    """``Linear -> ReLU -> Dropout -> out``."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), out)


class GradeHead(nn.Module):
    """Grade logits from encoder features, optionally conditioned on lesion maps.

    Args:
        encoder_channels: Channels of the deepest encoder feature map.
        num_lesions: Lesion channels ``L``.
        num_grades: Grades ``G``.
        conditioning: ``none``, ``stats``, ``lesion_pooled`` or ``bottleneck``.
        grade_output: ``softmax`` or ``coral`` (ordinal).
        head_hidden: Width of the MLP's hidden layer.
        head_dropout: Dropout before the last layer.
        lesion_dim: Width each lesion's pooled features are projected to (bottleneck).
        bottleneck_combine: How the bottleneck combines the lesions' evidence: ``sum`` (exact
            additive decomposition) or ``max`` (smooth maximum: the most severe lesion decides).
    """

    def __init__(
        self,
        encoder_channels: int,
        num_lesions: int,
        num_grades: int,
        conditioning: Conditioning = "none",
        grade_output: GradeOutput = "softmax",
        head_hidden: int = 128,
        head_dropout: float = 0.2,
        lesion_dim: int = 8,
        bottleneck_combine: Combine = "sum",
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
        if bottleneck_combine not in ("sum", "max"):
            raise ValueError(
                f"bottleneck_combine must be 'sum' or 'max', got {bottleneck_combine!r}"
            )
        self.conditioning = conditioning
        self.bottleneck_combine = bottleneck_combine
        self.grade_output = grade_output
        self.num_grades = num_grades
        self.stats = LesionFeatures()
        stats_width = num_lesions * LesionFeatures.num_features
        if conditioning == "bottleneck":
            per_lesion = LesionFeatures.num_features + lesion_dim
            self.project = nn.Linear(encoder_channels, lesion_dim)
            self.norm = nn.LayerNorm(per_lesion)
            width = 1 if grade_output == "coral" else num_grades
            # One weight matrix per lesion, no bias: contributions are exactly attributable.
            self.lesion_weights = nn.Parameter(torch.zeros(num_lesions, per_lesion, width))
            nn.init.normal_(self.lesion_weights, std=0.05)
            self.bias = nn.Parameter(torch.zeros(num_outputs(num_grades, grade_output)))
            if grade_output == "coral":
                self.bias.data = torch.linspace(1.0, -1.0, num_grades - 1)
            return
        in_features = (
            encoder_channels
            + {
                "none": 0,
                "stats": stats_width,
                "lesion_pooled": num_lesions * encoder_channels,
            }[conditioning]
        )
        self.net = mlp(
            in_features,
            head_hidden,
            output_layer(head_hidden, num_grades, grade_output),
            head_dropout,
        )

    def forward(self, pooled: Tensor, deep: Tensor, probs: Tensor) -> tuple[Tensor, Tensor | None]:
        """Grade logits and per-lesion contributions (``None`` unless ``bottleneck``).

        Args:
            pooled: ``(B, C)`` globally pooled encoder features.
            deep: ``(B, C, h, w)`` deepest encoder features.
            probs: ``(B, L, H, W)`` lesion probabilities.

        Returns:
            ``logits`` ``(B, G)`` (``(B, G - 1)`` for coral) and ``contributions``
            ``(B, L, G)`` (``(B, L, 1)`` for coral) or ``None``.
        """
        if self.conditioning == "none":
            return self.net(pooled), None
        if self.conditioning == "stats":
            return self.net(torch.cat([pooled, self.stats(probs).flatten(1)], dim=1)), None
        lesion_pooled = pool_under_lesions(deep, probs)
        if self.conditioning == "lesion_pooled":
            return self.net(torch.cat([pooled, lesion_pooled.flatten(1)], dim=1)), None
        per_lesion = self.norm(torch.cat([self.stats(probs), self.project(lesion_pooled)], dim=-1))
        evidence = torch.einsum("blf,lfg->blg", per_lesion, self.lesion_weights)
        logits = combine_evidence(evidence, self.bias, self.bottleneck_combine, self.grade_output)
        return logits, evidence if self.bottleneck_combine == "sum" else None
