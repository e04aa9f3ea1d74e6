"""Evaluation-time inference: sliding windows, test-time augmentation and deep ensembles.

**Sliding windows.** Training runs on patches; evaluating a 1024² TJDR image in one pass would
change the receptive field statistics and memory. Windows of ``window``² are run with
``overlap`` and blended with a separable tent weight that is highest in a window's centre, so
window borders (where the network sees the least context) count least and no seam shows.

**Test-time augmentation** (``tta``) averages the grade probabilities over flips (or all 8
symmetries of the square) of the image; ``lesion_tta`` does the same for the lesion probability
maps, each view's map turned back onto the image first. Logits (and so the loss) stay those of
the plain view.

**Further reads** of the same photographs at other sizes (a datamodule's ``eval_read_sizes``,
e.g. 1024² beside a 768² working size) add lesion maps that see finer detail: each read's map
(with the same windows and ``lesion_tta``) is resized onto the working grid (area averaging
when it is larger) and averaged with the working map, all reads weighted alike. Grades, logits
and contributions stay the working read's.

**Ensembles** average the grade and lesion probabilities of further trained models (members)
with the model's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from multitask_dr.checkpoints import check_checkpoint

TestTimeAugmentation = Literal["none", "flips", "dihedral"]


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with windows of ``window`` every ``stride``."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)  # the last window ends exactly at the border
    return starts


def tent_weight(window: int, device: torch.device) -> Tensor:
    """``(window, window)`` blending weight, 1 at the centre falling linearly towards the edges."""
    ramp = torch.minimum(
        torch.arange(window, device=device) + 1, torch.arange(window, 0, -1, device=device)
    )
    ramp = ramp.float() / ramp.max()
    return ramp[:, None] * ramp[None, :]


@torch.no_grad()
def sliding_window(
    predict: Callable[[Tensor], Tensor], image: Tensor, window: int, overlap: float = 0.25
) -> Tensor:
    """Run ``predict`` over overlapping windows of ``image`` and blend the outputs.

    Args:
        predict: Maps ``(B, C, window, window)`` to ``(B, K, window, window)``.
        image: ``(B, C, H, W)``; images no larger than ``window`` run in one pass.
        window: Window side length.
        overlap: Fraction of a window shared with its neighbour, in ``[0, 1)``.

    Returns:
        ``(B, K, H, W)`` blended outputs.
    """
    height, width = image.shape[-2:]
    if height <= window and width <= window:
        return predict(image)
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    stride = max(int(window * (1 - overlap)), 1)
    weight = tent_weight(window, image.device)
    total: Tensor | None = None
    norm = torch.zeros(height, width, device=image.device)
    for top in window_starts(height, window, stride):
        for left in window_starts(width, window, stride):
            out = predict(image[..., top : top + window, left : left + window])
            if total is None:
                total = out.new_zeros(*out.shape[:2], height, width)
            total[..., top : top + window, left : left + window] += out * weight
            norm[top : top + window, left : left + window] += weight
    assert total is not None
    return total / norm


def tta_views(image: Tensor, tta: TestTimeAugmentation) -> list[Tensor]:
    """The views of ``(B, 3, H, W)`` images that test-time augmentation averages over.

    ``none``: the image; ``flips``: plus horizontal, vertical and both flips (4 views);
    ``dihedral``: those 4 and their transposes, i.e. all 8 rotations/reflections of the square.
    A fundus photograph has no preferred orientation, so every view is a plausible input.
    """
    if tta not in ("none", "flips", "dihedral"):
        raise ValueError(f"tta must be none, flips or dihedral, got {tta!r}")
    if tta == "none":
        return [image]
    views = [image, image.flip(-1), image.flip(-2), image.flip(-2, -1)]
    if tta == "dihedral":
        views += [view.transpose(-2, -1) for view in views]
    return views


def undo_view(maps: Tensor, index: int) -> Tensor:
    """Turn the maps of view ``index`` of :func:`tta_views` back onto the original image.

    Views 0-3 are flips (each its own inverse); views 4-7 are the transposes of views 0-3, so
    their inverse transposes first, then flips.
    """
    if index >= 4:
        maps = maps.transpose(-2, -1)
    flip = ((), (-1,), (-2,), (-2, -1))[index % 4]
    return maps.flip(flip) if flip else maps


def onto_grid(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, K, h, w)`` maps resized to ``size``: area-averaged when larger, bilinear otherwise.

    Area averaging keeps a larger read's detail as the share of each working pixel it covers.
    """
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    if maps.shape[-2] >= size[0] and maps.shape[-1] >= size[1]:
        return F.interpolate(maps, size=size, mode="area")
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def tta_lesion_probs(
    segment: Callable[[Tensor], Tensor],
    image: Tensor,
    lesion_tta: TestTimeAugmentation,
    plain: Tensor | None = None,
) -> Tensor:
    """Lesion probabilities of ``image`` averaged over its ``lesion_tta`` views.

    Args:
        segment: Lesion logits of ``(B, 3, H, W)`` images (one pass or sliding windows).
        image: ``(B, 3, H, W)`` normalised images.
        lesion_tta: The views (:func:`tta_views`).
        plain: The plain view's probabilities when already computed (saves one pass).
    """
    views = tta_views(image, lesion_tta)
    maps = [torch.sigmoid(segment(image)) if plain is None else plain]
    for index, view in enumerate(views[1:], start=1):
        maps.append(undo_view(torch.sigmoid(segment(view)), index))
    return maps[0] if len(maps) == 1 else torch.stack(maps).mean(dim=0)


def segmenter(
    lesion_logits: Callable[[Tensor], Tensor],
    image: Tensor,
    window: int | None,
    overlap: float,
) -> tuple[Callable[[Tensor], Tensor], bool]:
    """The lesion-logits pass for images of ``image``'s size, and whether it slides windows.

    Images larger than ``window`` go by :func:`sliding_window`; others (or ``window=None``) in
    one pass.
    """
    if window is not None and max(image.shape[-2:]) > window:
        return partial(sliding_window, lesion_logits, window=window, overlap=overlap), True
    return lesion_logits, False


def evaluate_image(
    forward: Callable[..., dict[str, Tensor]],
    lesion_logits: Callable[[Tensor], Tensor],
    image: Tensor,
    tta: TestTimeAugmentation = "none",
    window: int | None = None,
    overlap: float = 0.25,
    lesion_tta: TestTimeAugmentation = "none",
    reads: Sequence[Tensor] = (),
) -> dict[str, Tensor]:
    """One model's evaluation outputs: sliding-window lesion maps, ``tta``-averaged grades.

    Args:
        forward: The task's forward (``(image, lesions=...)`` to outputs with ``lesion_probs``
            and ``grade_probs``).
        lesion_logits: The network's lesion-only pass, for sliding windows.
        image: ``(B, 3, H, W)`` normalised images.
        tta: Test-time augmentation of the grade.
        window: Lesion maps of images larger than this come by sliding windows of
            ``window``²; ``None``: one pass.
        overlap: Overlap between neighbouring windows, in ``[0, 1)``.
        lesion_tta: Test-time augmentation of the lesion probability maps.
        reads: The same images read at other sizes, ``(B, 3, H', W')`` each, normalised alike:
            their lesion maps are averaged with the working one on its grid (:func:`onto_grid`).
    """
    out = forward(image)
    # Every view has the image's sides (flipped or swapped): one decision for all of them.
    segment, windowed = segmenter(lesion_logits, image, window, overlap)
    if windowed:
        logits = segment(image)
        out["lesion_logits"] = logits
        out["lesion_probs"] = torch.sigmoid(logits)
    if "lesion_probs" in out:
        probs = tta_lesion_probs(segment, image, lesion_tta, plain=out["lesion_probs"])
        if reads:
            grid = tuple(image.shape[-2:])
            maps = [probs]
            for read in reads:
                # Each read its own window decision: a larger read may exceed ``window``.
                read_segment, _ = segmenter(lesion_logits, read, window, overlap)
                maps.append(onto_grid(tta_lesion_probs(read_segment, read, lesion_tta), grid))
            probs = torch.stack(maps).mean(dim=0)
        out["lesion_probs"] = probs
    views = tta_views(image, tta)
    if len(views) > 1:
        # Average probabilities, not logits: CORAL's logits are cumulative, not per grade.
        extra = [forward(view, lesions=False)["grade_probs"] for view in views[1:]]
        out["grade_probs"] = torch.stack([out["grade_probs"], *extra]).mean(dim=0)
    return out


def average_members(
    out: dict[str, Tensor], members: Sequence[dict[str, Tensor]]
) -> dict[str, Tensor]:
    """``out`` with its grade and lesion probabilities averaged with the members' (in place).

    Everything else (logits, contributions) stays the model's own.
    """
    if not members:
        return out
    outs = [out, *members]
    for key in ("grade_probs", "lesion_probs"):
        if all(key in o for o in outs):
            out[key] = torch.stack([o[key] for o in outs]).mean(dim=0)
    return out


class Ensemble:
    """A deep ensemble's further members: trained models loaded from checkpoints, frozen.

    The checkpoints are checked at once; the members load on first use, because LightningCLI
    builds the task inside a context that hands its hyper-parameters to every
    ``save_hyperparameters`` call, a member's included. Members stay out of the task's module
    tree on purpose: ``--ckpt_path`` then restores the task's own weights strictly, and a
    checkpoint saved from it holds one model.

    Args:
        paths: The members' checkpoints.
        load: Loads one checkpoint into a model (e.g. a ``functools.partial`` of
            ``MultiTaskDR.load_from_checkpoint``; picklable, unlike a lambda).

    Raises:
        CheckpointError: When a checkpoint is missing or not a readable checkpoint.
    """

    def __init__(self, paths: Sequence[str], load: Callable[[str], nn.Module]) -> None:
        for path in paths:
            check_checkpoint(path, "ensemble checkpoint")
        self.paths = list(paths)
        self.load = load
        self._members: list[nn.Module] | None = None

    @property
    def members(self) -> list[nn.Module]:
        """The members, frozen and in evaluation mode (loaded once)."""
        if self._members is None:
            self._members = [self.load(path).eval().requires_grad_(False) for path in self.paths]
        return self._members

    def average(
        self, out: dict[str, Tensor], image: Tensor, reads: Sequence[Tensor] = ()
    ) -> dict[str, Tensor]:
        """A model's evaluation outputs ``out`` for ``image``, averaged with the members'.

        Each member evaluates ``image`` (and its further ``reads``) alone (its
        ``single_evaluation_forward``: its own sliding windows and ``tta``), on ``image``'s
        device (:func:`average_members`).
        """
        members = [member.to(image.device) for member in self.members]
        outs = [m.single_evaluation_forward(image, reads) for m in members]  # type: ignore[operator]
        return average_members(out, outs)
