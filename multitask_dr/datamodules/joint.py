"""One datamodule feeding both tasks: segmentation batches and grading batches side by side."""

from __future__ import annotations

from lightning import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader


class JointDataModule(LightningDataModule):
    """Train one model on a segmentation source and a grading source together.

    Training yields one dict per step, ``{"segmentation": batch, "grading": batch}``
    (Lightning's ``CombinedLoader``, ``max_size_cycle``: the shorter source is cycled), so each
    source keeps its own resolution and batch size. Validation and testing run the sources one
    after the other (``dataloader_idx`` 0 = segmentation, 1 = grading).

    Args:
        segmentation: The datamodule with lesion masks (e.g. ``TJDRDataModule``).
        grading: The datamodule with grades (e.g. ``RetinaMNISTDataModule``).
    """

    SOURCES = ("segmentation", "grading")

    def __init__(self, segmentation: LightningDataModule, grading: LightningDataModule) -> None:
        super().__init__()
        self.segmentation = segmentation
        self.grading = grading

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
