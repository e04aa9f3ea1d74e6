"""One datamodule feeding both tasks: segmentation batches and grading batches side by side."""

from __future__ import annotations

from typing import Any

from lightning import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader


class JointDataModule(LightningDataModule):
    """Train one model on a segmentation source and a grading source together.

    Training yields one dict per step, ``{"segmentation": batch, "grading": batch}``
    (Lightning's ``CombinedLoader``, ``max_size_cycle``: the shorter source is cycled), so each
    source keeps its own resolution and batch size. Validation and testing run the sources one
    after the other (``dataloader_idx`` 0 = segmentation, 1 = grading).

    ``predict`` reads ``predict_dir`` through the segmentation source (its working resolution,
    field-of-view crop and normalisation: it is the source that looks like a fundus photograph).

    Args:
        segmentation: The datamodule with lesion masks (e.g. ``TJDRDataModule``).
        grading: The datamodule with grades (e.g. ``RetinaMNISTDataModule``).
        predict_dir: Folder of fundus images (any size) that ``predict`` reads; overrides the
            segmentation source's own ``predict_dir``.
    """

    SOURCES = ("segmentation", "grading")

    def __init__(
        self,
        segmentation: LightningDataModule,
        grading: LightningDataModule,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.segmentation = segmentation
        self.grading = grading
        self.predict_dir = predict_dir
        if predict_dir is not None:
            self.segmentation.predict_dir = predict_dir  # type: ignore[attr-defined]

    def _parts(self) -> tuple[LightningDataModule, LightningDataModule]:
        return self.segmentation, self.grading

    def prepare_data(self) -> None:
        """Prepare both sources."""
        for part in self._parts():
            part.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        """Set up both sources for ``stage``."""
        for part in self._parts():
            part.trainer = self.trainer
            part.setup(stage)

    def train_dataloader(self) -> CombinedLoader:
        """One step = one batch from each source."""
        loaders = {
            "segmentation": self.segmentation.train_dataloader(),
            "grading": self.grading.train_dataloader(),
        }
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> list[DataLoader]:
        """Segmentation validation, then grading validation."""
        return [part.val_dataloader() for part in self._parts()]

    def test_dataloader(self) -> list[DataLoader]:
        """Segmentation test, then grading test."""
        return [part.test_dataloader() for part in self._parts()]

    def predict_dataloader(self) -> DataLoader:
        """``predict_dir`` as the segmentation source preprocesses it."""
        return self.segmentation.predict_dataloader()

    def state_dict(self) -> dict[str, Any]:
        """Each source's state (its normalisation), saved into checkpoints."""
        parts = zip(self.SOURCES, self._parts(), strict=True)
        return {name: part.state_dict() for name, part in parts}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Give each source its saved state."""
        for name, part in zip(self.SOURCES, self._parts(), strict=True):
            if name in state_dict:
                part.load_state_dict(state_dict[name])
