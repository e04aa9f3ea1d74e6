"""One datamodule feeding both tasks: lesion sources and a grading source side by side."""

from __future__ import annotations

from typing import Any

from lightning import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader

from multitask_dr.datamodules.base import check_read_sizes


class JointDataModule(LightningDataModule):
    """Train one model on lesion sources and a grading source together.

    Training yields one dict per step, ``{source: batch, ...}`` (Lightning's ``CombinedLoader``,
    ``max_size_cycle``: shorter sources are cycled), so each source keeps its own resolution,
    batch size and annotation coverage. Validation and testing run the sources one after the
    other, in :meth:`sources` order (lesion sources first, then grading).

    Several lesion sources (small datasets combined, e.g. HEI-MED for exudates plus IDRiD for
    all four lesions) are a list under ``segmentation``; each is then named by its own
    ``name`` (TJDR datamodules: the root folder's name) and scored on its own as well as pooled
    (``test/seg/<name>/aupr_EX`` beside ``test/seg/aupr_EX``). A single source is named
    ``segmentation``.

    ``predict`` reads ``predict_dir`` through the first lesion source (its working resolution,
    field-of-view crop and normalisation: it is a source that looks like a fundus photograph).

    Args:
        segmentation: The datamodule with lesion masks (e.g. ``TJDRDataModule``), or a list of
            them.
        grading: The datamodule with grades (``RetinaMNISTDataModule``, or
            ``GradedFolderDataModule`` for a public dataset's full-resolution photographs);
            ``None`` for a lesion-only run.
        predict_dir: Folder of fundus images (any size) that ``predict`` reads; overrides the
            lesion source's own ``predict_dir``.
        eval_read_sizes: Further sizes every lesion source's evaluation (and ``predict``) also
            reads each photograph at; overrides each source's own ``eval_read_sizes``
            (:class:`~multitask_dr.datamodules.TJDRDataModule`). One flag for all sources:
            the command line cannot reach into the ``segmentation`` list.
    """

    def __init__(
        self,
        segmentation: LightningDataModule | list[LightningDataModule],
        grading: LightningDataModule | None = None,
        predict_dir: str | None = None,
        eval_read_sizes: list[int] | None = None,
    ) -> None:
        super().__init__()
        lesion_parts = segmentation if isinstance(segmentation, list) else [segmentation]
        if not lesion_parts:
            raise ValueError("segmentation needs at least one lesion datamodule")
        if len(lesion_parts) == 1:
            names = ["segmentation"]
        else:
            names = [str(getattr(p, "name", f"lesions{i}")) for i, p in enumerate(lesion_parts)]
            if len(set(names)) != len(names):
                raise ValueError(f"lesion sources need distinct names (their `name`), got {names}")
        self._sources = dict(zip(names, lesion_parts, strict=True))
        if grading is not None:
            self._sources["grading"] = grading
        #: Names of the lesion sources, in evaluation-dataloader order (read by the task).
        self.lesion_sources = names
        self.segmentation = lesion_parts[0]
        self.grading = grading
        self.predict_dir = predict_dir
        if predict_dir is not None:
            self.segmentation.predict_dir = predict_dir  # type: ignore[attr-defined]
        if eval_read_sizes is not None:
            for name, part in zip(names, lesion_parts, strict=True):
                if not hasattr(part, "eval_read_sizes"):
                    raise ValueError(f"lesion source {name} takes no eval_read_sizes")
                size = part.image_size  # type: ignore[attr-defined]
                checked = check_read_sizes(eval_read_sizes, size)
                part.eval_read_sizes = checked  # type: ignore[attr-defined]

    def sources(self) -> list[tuple[str, LightningDataModule]]:
        """``(name, datamodule)`` of every source, in evaluation-dataloader order."""
        return list(self._sources.items())

    def prepare_data(self) -> None:
        """Prepare every source."""
        for _, part in self.sources():
            part.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        """Set up every source for ``stage``."""
        for _, part in self.sources():
            part.trainer = self.trainer
            part.setup(stage)

    def train_dataloader(self) -> CombinedLoader:
        """One step = one batch from each source."""
        loaders = {name: part.train_dataloader() for name, part in self.sources()}
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> list[DataLoader]:
        """Each source's validation split, lesion sources first."""
        return [part.val_dataloader() for _, part in self.sources()]

    def test_dataloader(self) -> list[DataLoader]:
        """Each source's test split, lesion sources first."""
        return [part.test_dataloader() for _, part in self.sources()]

    def predict_dataloader(self) -> DataLoader:
        """``predict_dir`` as the first lesion source preprocesses it."""
        return self.segmentation.predict_dataloader()

    def state_dict(self) -> dict[str, Any]:
        """Each source's state (its normalisation, its pass count), saved into checkpoints."""
        return {name: part.state_dict() for name, part in self.sources()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Give each source its saved state."""
        for name, part in self.sources():
            if name in state_dict:
                part.load_state_dict(state_dict[name])
