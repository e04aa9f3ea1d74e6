"""Sanity checks on phantoms whose grade rule is known, and model randomisation.

The numbers each check measured are printed (``pytest -s``) and quoted in docs/attribution.md.
"""

import numpy as np
import pytest
import torch

from multitask_dr.attribution import (
    ablate_lesion_maps,
    deciding_lesion_is_necessary,
    decompose,
    encode,
    instance_attribution,
    integrated_gradients,
    randomized_copy,
    rank_correlation,
)
from multitask_dr.datasets.synthetic.grade import Lesion, Phantom


@pytest.fixture(scope="module")
def attributions(rule_model):
    net = rule_model.net
    evidence = encode(net, rule_model.images, rule_model.masks)
    random_net = randomized_copy(net, seed=1)
    random_evidence = encode(random_net, rule_model.images, rule_model.masks)
    return {
        "evidence": evidence,
        "ablation": ablate_lesion_maps(net, evidence),
        "decomposition": decompose(net, evidence),
        "ig": integrated_gradients(net, evidence, steps=16),
        "random_ablation": ablate_lesion_maps(random_net, random_evidence),
        "random_ig": integrated_gradients(random_net, random_evidence, steps=16),
    }


def agreement(result, phantoms, cases):
    return float(np.mean([result.ranking(i)[0][0] == phantoms[i].deciding_lesion for i in cases]))


def necessary_cases(rule_model):
    return [i for i, p in enumerate(rule_model.test) if deciding_lesion_is_necessary(p)]


def test_the_head_learned_the_rule_from_ground_truth_maps(rule_model, attributions):
    accuracy = (attributions["evidence"].predicted_grade == rule_model.grades).float().mean()
    print(f"\nrule head accuracy on 100 held-out phantoms (true maps): {accuracy:.2f}")
    assert accuracy >= 0.85


def test_top_ranked_lesion_is_the_rules_deciding_lesion(rule_model, attributions):
    cases = necessary_cases(rule_model)
    assert len(cases) >= 40  # grade 1, 3, 4 and single-type grade-2 eyes
    rates = {
        name: agreement(attributions[name], rule_model.test, cases)
        for name in ("ablation", "decomposition", "ig", "random_ablation")
    }
    by_grade = {}
    for grade in range(1, 5):
        eyes = [i for i in cases if rule_model.test[i].grade == grade]
        by_grade[grade] = (
            round(agreement(attributions["ablation"], rule_model.test, eyes), 2),
            len(eyes),
        )
    print(f"\ntop lesion == deciding lesion over {len(cases)} eyes: {rates}")
    print(f"ablation by grade (rate, eyes): {by_grade}")
    assert rates["ablation"] >= 0.9
    assert rates["decomposition"] >= 0.85
    assert rates["ig"] >= 0.7
    # Eyes with one or two lesion types make agreement partly structural (only present types
    # can rank first), so the trained head must clearly beat the randomised one.
    assert rates["ablation"] >= rates["random_ablation"] + 0.2


def test_model_randomisation_changes_the_attributions(rule_model, attributions):
    ig, random_ig = attributions["ig"], attributions["random_ig"]
    lesion_pixels = rule_model.masks > 0.5
    per_lesion = rank_correlation(ig.totals, random_ig.totals)
    in_lesions = rank_correlation(ig.maps, random_ig.maps, where=lesion_pixels)
    effects = rank_correlation(
        attributions["ablation"].effect, attributions["random_ablation"].effect
    )
    print(
        f"\nSpearman trained vs randomised head: IG per lesion {per_lesion:.2f}, IG pixels "
        f"inside lesions {in_lesions:.2f}, ablation effects {effects:.2f}"
    )
    assert per_lesion < 0.5 and in_lesions < 0.5 and effects < 0.7


def test_a_designed_eye_the_decomposition_must_get_right(rule_model):
    # One eye, two versions: haemorrhages in all four quadrants (grade 3, HE decides), and the
    # same eye with three cotton-wool spots added (grade 4, SE decides).
    index = next(
        i
        for i, p in enumerate(rule_model.test)
        if p.grade == 3 and not any(lesion.kind == "SE" for lesion in p.lesions)
    )
    maps = rule_model.masks[index : index + 1].clone()
    net = rule_model.net
    grade3 = decompose(net, encode(net, rule_model.images[index : index + 1], maps))
    assert grade3.ranking(0)[0][0] == "HE"
    for x in (20, 32, 44):  # 5x5 px: the phantoms' smallest spots are 23 px at 64²
        maps[0, 3, 30:35, x : x + 5] = 1.0
    evidence = encode(net, rule_model.images[index : index + 1], maps)
    grade4 = decompose(net, evidence)
    assert int(evidence.predicted_grade) == 4 and grade4.ranking(0)[0][0] == "SE"
    # Per instance: each spot matters, and no single haemorrhage outweighs a spot.
    instances = instance_attribution(net, evidence)
    effects = {i.name: e for i, e in zip(instances.instances, instances.effects, strict=True)}
    assert min(v for k, v in effects.items() if k.startswith("SE")) > 0
    assert max(v for k, v in effects.items() if k.startswith("HE")) < min(
        v for k, v in effects.items() if k.startswith("SE")
    )


def test_necessity_follows_the_rule():
    def eye(*kinds_and_xy):
        lesions = [Lesion.from_circle(k, (x, y), 2.0) for k, x, y in kinds_and_xy]
        from multitask_dr.datasets.synthetic.grade import grade_from_lesions

        fov = (32.0, 32.0, 30.0)
        grade, deciding = grade_from_lesions(lesions, fov)
        return Phantom(np.zeros((64, 64, 3), np.uint8), lesions, grade, deciding, fov)

    assert deciding_lesion_is_necessary(eye(("MA", 20, 20)))
    assert deciding_lesion_is_necessary(eye(("EX", 20, 20), ("EX", 40, 40), ("MA", 10, 30)))
    # Grade 2 with HE and EX: erasing the dominant EX leaves grade 2.
    assert not deciding_lesion_is_necessary(eye(("EX", 20, 20), ("EX", 40, 40), ("HE", 25, 40)))
    assert not deciding_lesion_is_necessary(eye())


def test_randomized_copy_leaves_the_original_alone(rule_model):
    net = rule_model.net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    copy = randomized_copy(net, modules=("grade_head", "segmentation_head"))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    changed = [k for k, v in copy.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("grade_head.lesion_weights") for k in changed)
    assert any(k.startswith("segmentation_head") for k in changed)
    assert not any(k.startswith("encoder") for k in changed)
