"""multitask_dr: joint diabetic-retinopathy lesion segmentation and grading."""

__version__ = "0.1.0"
