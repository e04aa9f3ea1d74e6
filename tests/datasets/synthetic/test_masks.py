import numpy as np

from multitask_dr.datasets.synthetic.grade import Lesion, Phantom
from multitask_dr.datasets.synthetic.masks import lesion_masks, release_mask
from multitask_dr.lesions import LESIONS, RELEASE_INDEX, RELEASE_PRIORITY
from tests.datasets.synthetic.conftest import blob


def test_release_mask_agrees_with_lesion_masks(phantoms):
    for eye in phantoms[4] + phantoms[3]:
        index, masks = release_mask(eye), lesion_masks(eye)
        assert index.dtype == np.uint8 and masks.dtype == np.uint8
        assert set(np.unique(index)) <= {0, 1, 2, 3, 4} and set(np.unique(masks)) <= {0, 1}
        assert np.array_equal(index > 0, masks.any(axis=2))
        single = masks.sum(axis=2) == 1
        for channel, kind in enumerate(LESIONS):
            sel = single & (masks[..., channel] == 1)
            assert (index[sel] == RELEASE_INDEX[kind]).all()
        # Overlaps: the first present lesion of RELEASE_PRIORITY.
        for r, c in zip(*np.nonzero(masks.sum(axis=2) > 1), strict=True):
            first = next(k for k in RELEASE_PRIORITY if masks[r, c, LESIONS.index(k)])
            assert index[r, c] == RELEASE_INDEX[first]


def test_release_mask_keeps_the_smaller_lesion_whatever_the_order():
    big, dot = blob("HE", 20, 20, r=6), Lesion.from_circle("MA", (20, 20), 2)
    image = np.zeros((40, 40, 3), np.uint8)
    on_top = release_mask(Phantom(image, [big, dot], 2, "HE", (20, 20, 19)))
    below = release_mask(Phantom(image, [dot, big], 2, "HE", (20, 20, 19)))
    np.testing.assert_array_equal(on_top, below)
    assert on_top[20, 20] == RELEASE_INDEX["MA"]  # MA comes before HE in RELEASE_PRIORITY
    masks = lesion_masks(Phantom(image, [big, dot], 2, "HE", (20, 20, 19)))
    assert masks[20, 20].tolist() == [1, 1, 0, 0]  # MA and HE both kept
    assert (on_top == RELEASE_INDEX["MA"]).sum() == masks[..., 0].sum()
    assert (on_top > 0).sum() == masks.any(axis=2).sum()
