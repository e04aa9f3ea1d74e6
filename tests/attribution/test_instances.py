import numpy as np
import pytest
import torch

from multitask_dr.attribution import encode, find_instances, instance_attribution

from .conftest import tiny_net


def three_haemorrhages():
    maps = torch.zeros(1, 4, 64, 64)
    maps[0, 1, 5:9, 5:9] = 0.9  # HE 16 px
    maps[0, 1, 9, 5:9] = 0.3  # its sub-threshold rim
    maps[0, 1, 40:50, 40:46] = 0.8  # HE 60 px
    maps[0, 1, 30, 10] = 0.6  # HE 1 px
    maps[0, 0, 20, 50] = 0.95  # one MA
    return maps


def test_find_instances_labels_connected_components_largest_first():
    instances = find_instances(three_haemorrhages()[0], threshold=0.5, dilate=1)
    assert [i.name for i in instances] == ["MA#1", "HE#1", "HE#2", "HE#3"]
    he1, he2, he3 = instances[1:]
    assert (he1.area, he2.area, he3.area) == (60, 16, 1)
    assert he2.bbox == (5, 5, 4, 4) and he2.centroid == pytest.approx((6.5, 6.5))
    assert he1.peak == pytest.approx(0.8)
    # The erased region covers the component and its rim, and nothing of the others.
    assert he2.region[5:10, 5:9].all() and not he2.region[40:50, 40:46].any()
    assert he2.region.sum() == 6 * 6
    assert [i.name for i in find_instances(three_haemorrhages()[0], min_area=2)] == [
        "HE#1",
        "HE#2",
    ]
    with pytest.raises(ValueError):
        find_instances(np.zeros((3, 8, 8)))


def test_instances_never_erase_a_touching_neighbour():
    maps = torch.zeros(4, 16, 16)
    maps[2, 4:8, 4:6] = 1.0
    maps[2, 4:8, 7:9] = 1.0  # one column gap: two instances whose dilations overlap
    first, second = find_instances(maps, dilate=2)
    assert not first.region[4:8, 7:9].any() and not second.region[4:8, 4:6].any()


@pytest.mark.parametrize("conditioning", ["none", "stats", "bottleneck"])
def test_instance_attribution_erases_each_instance_on_its_own(conditioning):
    net = tiny_net(conditioning)
    evidence = encode(net, torch.randn(2, 3, 64, 64), three_haemorrhages().repeat(2, 1, 1, 1))
    result = instance_attribution(net, evidence, sample=1)
    assert [i.name for i in result.instances] == ["MA#1", "HE#1", "HE#2", "HE#3"]
    assert len(result.effects) == 4
    if conditioning == "none":
        assert max(abs(e) for e in result.effects) < 1e-7
    else:
        assert max(abs(e) for e in result.effects) > 0
    frame = result.to_frame()
    assert list(frame["instance"]) == ["MA#1", "HE#1", "HE#2", "HE#3"]
    assert frame.loc[0, "area"] == 1 and {"effect", "p0_after", "grade_after"} <= set(frame)
    assert result.ranking()[0][1] == max(result.effects)


def test_no_instances_gives_an_empty_result():
    net = tiny_net("stats")
    evidence = encode(net, torch.randn(1, 3, 32, 32), torch.zeros(1, 4, 32, 32))
    result = instance_attribution(net, evidence)
    assert result.instances == [] and result.effects == [] and result.rows() == []
