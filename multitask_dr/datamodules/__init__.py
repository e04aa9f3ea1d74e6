"""LightningDataModules: splits, loaders and transforms over the datasets."""

from multitask_dr.datamodules.graded import GradedFolderDataModule
from multitask_dr.datamodules.joint import JointDataModule
from multitask_dr.datamodules.retinamnist import RetinaMNISTDataModule
from multitask_dr.datamodules.tjdr import TJDRDataModule
from multitask_dr.datamodules.transforms import Augmentation

__all__ = [
    "Augmentation",
    "GradedFolderDataModule",
    "JointDataModule",
    "RetinaMNISTDataModule",
    "TJDRDataModule",
]
