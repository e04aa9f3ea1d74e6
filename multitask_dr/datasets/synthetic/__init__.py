"""Synthetic fundus photographs with exact lesion polygons, written in the real dataset formats.

Every loader in the project can be exercised end to end without the real data: this module
draws fundus-like images (black surround, circular field of view, vignetted orange-red retina,
yellowish optic disc, darker macula, branching vessels, texture) with lesions painted from
shapely polygons, and writes them as

* a TJDR release tree (:func:`~.writers.write_tjdr`): ``{train,test}/image/NNN.png``, palette
  ``{train,test}/annotation/NNN.png`` (0 bg, 1 EX, 2 HE, 3 MA, 4 SE), optional Labelme 5.x
  JSON beside each image, and ``grades.csv`` (not part of the release);
* RetinaMNIST files (:func:`~.writers.write_retinamnist`) with medmnist's names, keys,
  dtypes and shapes.

Lesion appearance: MA tiny dark-red discs (radius 0.4-0.8 % of the image size, never below
1.5 px), HE larger dark-red irregular blots (some flame-shaped), EX bright yellow small
irregular patches in clusters, SE pale whitish blurred ("fluffy") spots. Lesions lie entirely
inside the field of view and off the optic disc. Every lesion is written as a Labelme shape (MA
a circle, the others polygons), and its mask is that shape under the default ``labelme`` rule
(:func:`~multitask_dr.datasets.labelme_rule.rasterize_labelme`): the image is painted from these
masks, the palette PNG is them collapsed by :data:`~multitask_dr.lesions.RELEASE_PRIORITY`,
and reading the JSON back gives them again, so image, PNG and JSON agree pixel for pixel.

The grade an eye's lesions give (the ICDR-like rule every phantom obeys) is in
:mod:`~multitask_dr.datasets.synthetic.grade`.

Determinism: each image draws from its own generator seeded by ``(seed, dataset, split,
index)`` (:func:`~multitask_dr.datasets.synthetic.sampling.image_rng`), so the same seed gives
byte-identical files and writing more images never changes the earlier ones.

Modules, each importable without the ones after it:

* :mod:`~multitask_dr.datasets.synthetic.grade`: the lesion data model and the grade rule
  (what the attribution sanity checks need, without the renderer);
* :mod:`~multitask_dr.datasets.synthetic.sampling`: per-image generators, grade draws and
  lesion sampling consistent with a grade;
* :mod:`~multitask_dr.datasets.synthetic.masks`: each lesion as its Labelme shape and its masks;
* :mod:`~multitask_dr.datasets.synthetic.render`: the fundus photograph;
* :mod:`~multitask_dr.datasets.synthetic.writers`: the datasets on disk, through the format
  writers that sit beside their readers;
* :mod:`~multitask_dr.datasets.synthetic.cli`: the command line.

Command line::

    python -m multitask_dr.datasets.synthetic --out data/synthetic --seed 0
"""
