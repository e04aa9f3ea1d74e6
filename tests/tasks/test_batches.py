from types import SimpleNamespace

from multitask_dr.tasks.batches import lesion_source, split_sources

from .conftest import grade_batch, seg_batch


def test_split_sources():
    single = grade_batch()
    assert split_sources(single) == {"batch": single}
    joint = {"segmentation": seg_batch(), "grading": grade_batch()}
    assert set(split_sources(joint)) == {"segmentation", "grading"}


def test_lesion_sources_are_scored_apart_only_when_there_are_several():
    def trainer(sources):
        return SimpleNamespace(datamodule=SimpleNamespace(lesion_sources=sources))

    assert lesion_source(None, 0) is None  # a task used without a Trainer
    assert lesion_source(trainer(["heimed"]), 0) is None  # one source: pooled scores only
    assert lesion_source(trainer(["heimed", "idrid"]), 1) == "idrid"
    assert lesion_source(trainer(["heimed", "idrid"]), 2) is None  # e.g. the grading loader
    assert lesion_source(SimpleNamespace(datamodule=None), 0) is None
