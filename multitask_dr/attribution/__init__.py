"""Lesion -> grade attribution: why did the model give this grade?

Every method edits the lesion probability maps the grade head reads (or the image) and
measures how the grade moves; the encoder runs once per image (:func:`encode`).

- :func:`decompose`: exact ``logit = sum of per-lesion contributions + bias`` (``bottleneck``).
- :func:`ablate_lesion_maps`, :func:`ablation_curves`: erase or scale one lesion type's map.
- :func:`ablate_by_inpainting`: paint a lesion type out of the image, run the whole model.
- :func:`integrated_gradients`, :func:`gradient_x_input`: gradients on the maps, per type.
- :func:`instance_attribution`: erase each connected lesion component on its own.
- :mod:`~multitask_dr.attribution.sanity`: model randomisation and known-rule checks.
"""

from multitask_dr.attribution.ablation import (
    Ablation,
    AblationCurves,
    ablate_by_inpainting,
    ablate_lesion_maps,
    ablation_curves,
    inpaint,
    normalize,
)
from multitask_dr.attribution.core import LesionEvidence, Target, encode, grade_score, regrade
from multitask_dr.attribution.decomposition import Decomposition, decompose
from multitask_dr.attribution.gradients import (
    GradientAttribution,
    gradient_x_input,
    integrated_gradients,
)
from multitask_dr.attribution.instances import (
    InstanceAttribution,
    LesionInstance,
    find_instances,
    instance_attribution,
)
from multitask_dr.attribution.sanity import (
    deciding_lesion_is_necessary,
    randomized_copy,
    rank_correlation,
)

__all__ = [
    "Ablation",
    "AblationCurves",
    "Decomposition",
    "GradientAttribution",
    "InstanceAttribution",
    "LesionEvidence",
    "LesionInstance",
    "Target",
    "ablate_by_inpainting",
    "ablate_lesion_maps",
    "ablation_curves",
    "deciding_lesion_is_necessary",
    "decompose",
    "encode",
    "find_instances",
    "grade_score",
    "gradient_x_input",
    "inpaint",
    "instance_attribution",
    "integrated_gradients",
    "normalize",
    "randomized_copy",
    "rank_correlation",
    "regrade",
]
