"""`select_regions` / `match_boxes_to_regions` on hand-made boxes (spec §1.6)."""

import pytest
import torch

from transformers_groma.modeling.region_selection import (
    match_boxes_to_regions,
    select_regions,
    warn_about_unmatched_boxes,
)

from .groma_test_utils import GRID, cxcywh, xyxy_to_cxcywh


NO_BOXES = torch.zeros(0, 4)


def select(boxes, scores, refer=None, ground=None, **kwargs):
    """Single-image call with the released settings unless overridden."""
    settings = {"nms_threshold": 0.6, "score_threshold": 0.15, "max_regions": 100, **kwargs}
    regions, region_scores = select_regions(
        boxes[None],
        torch.as_tensor(scores, dtype=torch.float32)[None],
        [NO_BOXES if refer is None else refer],
        [NO_BOXES if ground is None else ground],
        **settings,
    )
    return regions[0], region_scores[0]


def assert_rows(actual: torch.Tensor, expected: torch.Tensor):
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


# Boxes overlapping BASE by a known IoU (GRID: four disjoint boxes on a 2x2 grid).


def shifted(box_xyxy, dx):
    x1, y1, x2, y2 = box_xyxy
    return xyxy_to_cxcywh(x1 + dx, y1, x2 + dx, y2)


BASE = (0.1, 0.1, 0.5, 0.5)  # 0.4 x 0.4
# IoU of BASE with BASE shifted right by dx: (0.4 - dx) / (0.4 + dx)
OVERLAP_07 = shifted(BASE, 0.4 * 0.3 / 1.7)  # IoU 0.7 (> 0.6: suppressed)
OVERLAP_05 = shifted(BASE, 0.4 / 3)  # IoU 0.5 (< 0.6: kept)


def test_iou_constants():
    from torchvision.ops import box_convert, box_iou

    base = torch.tensor([xyxy_to_cxcywh(*BASE)])
    others = cxcywh(OVERLAP_07, OVERLAP_05)
    ious = box_iou(box_convert(base, "cxcywh", "xyxy"), box_convert(others, "cxcywh", "xyxy"))[0]
    torch.testing.assert_close(ious, torch.tensor([0.7, 0.5]), atol=1e-5, rtol=0)


def test_score_filter_is_strict_and_output_is_score_descending():
    regions, scores = select(GRID, [0.15, 0.5, 0.16, 0.9])
    assert_rows(regions, GRID[[3, 1, 2]])  # 0.15 is not > 0.15
    assert_rows(scores, torch.tensor([0.9, 0.5, 0.16]))


def test_nms_suppresses_iou_above_threshold_only():
    boxes = cxcywh(xyxy_to_cxcywh(*BASE), OVERLAP_07, OVERLAP_05)
    regions, scores = select(boxes, [0.9, 0.8, 0.7])
    assert_rows(regions, boxes[[0, 2]])
    assert_rows(scores, torch.tensor([0.9, 0.7]))
    # Ranking decides who suppresses whom: with box 1 best, it removes box 0 (IoU 0.7) and box 2 (IoU 0.73).
    regions, scores = select(boxes, [0.7, 0.8, 0.6])
    assert_rows(regions, boxes[[1]])
    assert_rows(scores, torch.tensor([0.8]))


def test_nms_higher_scored_overlap_wins():
    boxes = cxcywh(xyxy_to_cxcywh(*BASE), OVERLAP_07)
    regions, scores = select(boxes, [0.3, 0.8])
    assert_rows(regions, boxes[[1]])
    assert_rows(scores, torch.tensor([0.8]))


def test_nms_threshold_is_configurable():
    boxes = cxcywh(xyxy_to_cxcywh(*BASE), OVERLAP_07, OVERLAP_05)
    regions, _ = select(boxes, [0.9, 0.8, 0.7], nms_threshold=0.75)
    assert_rows(regions, boxes)  # 0.7 <= 0.75 now
    regions, _ = select(boxes, [0.9, 0.8, 0.7], nms_threshold=0.4)
    assert_rows(regions, boxes[[0]])  # 0.5 > 0.4 too


def test_top_k_cut_after_nms():
    boxes = torch.cat([cxcywh(xyxy_to_cxcywh(*BASE), OVERLAP_07), GRID[1:]])
    scores = [0.9, 0.85, 0.5, 0.4, 0.3]
    regions, region_scores = select(boxes, scores, max_regions=3)
    # the suppressed box does not take one of the 3 slots
    assert_rows(regions, boxes[[0, 2, 3]])
    assert_rows(region_scores, torch.tensor([0.9, 0.5, 0.4]))


def test_user_boxes_come_first_and_suppress_overlapping_proposals():
    proposals = torch.cat([cxcywh(OVERLAP_07), GRID[1:]])
    user = cxcywh(xyxy_to_cxcywh(*BASE))
    regions, scores = select(proposals, [0.95, 0.6, 0.5, 0.4], refer=user)
    assert_rows(regions, torch.cat([user, GRID[1:]]))  # the user box itself becomes the region
    assert_rows(scores, torch.tensor([1.0, 0.6, 0.5, 0.4]))


def test_user_boxes_kept_even_below_proposal_scores_and_threshold_irrelevant():
    user = cxcywh([0.5, 0.5, 0.1, 0.1], [0.1, 0.9, 0.1, 0.1])
    regions, scores = select(GRID, [0.01, 0.02, 0.03, 0.04], refer=user)  # no proposal passes 0.15
    assert_rows(regions, user)
    assert_rows(scores, torch.ones(2))


def test_ground_truth_boxes_score_0_2():
    ground = cxcywh([0.5, 0.5, 0.1, 0.1])
    regions, scores = select(GRID, [0.9, 0.1, 0.19, 0.21], ground=ground)
    assert_rows(regions, torch.cat([GRID[[0, 3]], ground, GRID[[2]]]))
    assert_rows(scores, torch.tensor([0.9, 0.21, 0.2, 0.19]))
    # a better proposal overlapping it stands in for it
    regions, _ = select(cxcywh(OVERLAP_07), [0.5], ground=cxcywh(xyxy_to_cxcywh(*BASE)))
    assert_rows(regions, cxcywh(OVERLAP_07))
    # a score threshold at 0.2 drops it (strict filter)
    regions, _ = select(GRID, [0.9, 0.0, 0.0, 0.0], ground=ground, score_threshold=0.2)
    assert_rows(regions, GRID[[0]])


def test_custom_user_and_ground_scores():
    ground = cxcywh([0.5, 0.5, 0.1, 0.1])
    regions, scores = select(GRID, [0.9, 0.0, 0.0, 0.0], ground=ground, ground_box_score=0.95)
    assert_rows(regions, torch.cat([ground, GRID[[0]]]))
    assert_rows(scores, torch.tensor([0.95, 0.9]))


def test_ties_keep_candidate_order_with_many_equal_scores():
    # 25 disjoint proposals on a 5x5 grid plus 3 user boxes, all at the same score.
    centers = (torch.arange(5) + 0.5) / 5
    cy, cx = torch.meshgrid(centers, centers, indexing="ij")
    proposals = torch.stack([cx.flatten(), cy.flatten(), torch.full((25,), 0.1), torch.full((25,), 0.1)], 1)
    user = cxcywh([0.1, 0.1, 0.05, 0.05], [0.3, 0.1, 0.05, 0.05], [0.5, 0.1, 0.05, 0.05])  # inside cells 0-2
    regions, _ = select(proposals, torch.ones(25), refer=user)
    # IoU of a 0.05 box with its 0.1 cell is 0.25: nothing is suppressed; order = candidate order
    assert_rows(regions, torch.cat([proposals, user]))
    regions, _ = select(proposals, torch.full((25,), 0.5), refer=user, max_regions=20)
    assert_rows(regions, torch.cat([user, proposals[:17]]))


def test_ties_between_user_boxes_keep_their_order():
    user = GRID[[3, 0, 2, 1]]
    regions, _ = select(GRID, torch.zeros(4), refer=user)
    assert_rows(regions, user)


def test_overlapping_user_boxes_collapse_to_the_first():
    user = cxcywh(xyxy_to_cxcywh(*BASE), OVERLAP_07)
    regions, _ = select(GRID, torch.zeros(4), refer=user)
    assert_rows(regions, user[[0]])
    assert match_boxes_to_regions(user, regions).tolist() == [0, 0]


def test_empty_survivors_fall_back_to_the_best_candidate():
    regions, scores = select(GRID, [0.01, 0.12, 0.05, 0.11])
    assert_rows(regions, GRID[[1]])
    assert_rows(scores, torch.tensor([0.12]))
    # also with a shuffle requested
    regions, _ = select(GRID, [0.01, 0.02, 0.14, 0.03], shuffle=True, generator=torch.Generator().manual_seed(0))
    assert_rows(regions, GRID[[2]])


def test_empty_survivors_first_of_tied_candidates():
    regions, _ = select(GRID, [0.1, 0.1, 0.1, 0.1])
    assert regions.shape == (1, 4)
    assert_rows(regions, GRID[[0]])


def test_batch_gives_the_same_as_per_image_calls():
    generator = torch.Generator().manual_seed(3)
    batch, queries = 4, 40
    centers = torch.rand(batch, queries, 2, generator=generator) * 0.6 + 0.2
    sizes = torch.rand(batch, queries, 2, generator=generator) * 0.3 + 0.05
    boxes = torch.cat([centers, sizes], -1)
    scores = torch.rand(batch, queries, generator=generator) * 0.5
    scores[1] = 0.05  # image 1: nothing passes -> fallback
    scores[2, :10] = 0.3  # ties
    refer = [cxcywh([0.5, 0.5, 0.2, 0.2]), NO_BOXES, cxcywh([0.3, 0.3, 0.1, 0.1], [0.3, 0.3, 0.1, 0.1]), NO_BOXES]
    ground = [NO_BOXES, cxcywh([0.7, 0.7, 0.2, 0.2]), NO_BOXES, cxcywh([0.4, 0.6, 0.2, 0.3])]
    settings = {"nms_threshold": 0.5, "score_threshold": 0.15, "max_regions": 6}
    batched = select_regions(boxes, scores, refer, ground, **settings)
    for i in range(batch):
        single = select_regions(boxes[i : i + 1], scores[i : i + 1], refer[i : i + 1], ground[i : i + 1], **settings)
        assert_rows(batched[0][i], single[0][0])
        assert_rows(batched[1][i], single[1][0])
    assert [len(r) for r in batched[0]] == [6, 1, 6, 6]


def test_kept_regions_pairwise_iou_below_threshold():
    from torchvision.ops import box_convert, box_iou

    generator = torch.Generator().manual_seed(5)
    boxes = torch.cat([torch.rand(60, 2, generator=generator) * 0.5 + 0.25, torch.full((60, 2), 0.3)], 1)
    scores = torch.rand(60, generator=generator)
    regions, region_scores = select(boxes, scores, nms_threshold=0.3, max_regions=100)
    ious = box_iou(box_convert(regions, "cxcywh", "xyxy"), box_convert(regions, "cxcywh", "xyxy"))
    assert (ious.triu(1) <= 0.3).all()
    assert (region_scores[:-1] >= region_scores[1:]).all()
    assert (region_scores > 0.15).all()


def test_shuffle_is_a_seeded_permutation():
    generator = torch.Generator().manual_seed(11)
    boxes = torch.cat([torch.rand(30, 2, generator=generator) * 0.8 + 0.1, torch.full((30, 2), 0.05)], 1)
    scores = torch.rand(30, generator=generator) * 0.8 + 0.2
    ordered, ordered_scores = select(boxes, scores, max_regions=20)
    shuffled_a, scores_a = select(
        boxes, scores, max_regions=20, shuffle=True, generator=torch.Generator().manual_seed(7)
    )
    shuffled_b, _ = select(boxes, scores, max_regions=20, shuffle=True, generator=torch.Generator().manual_seed(7))
    shuffled_c, _ = select(boxes, scores, max_regions=20, shuffle=True, generator=torch.Generator().manual_seed(8))
    assert_rows(shuffled_a, shuffled_b)
    assert not torch.equal(shuffled_a, ordered)
    assert not torch.equal(shuffled_a, shuffled_c)
    # same set of rows, scores follow their boxes
    perm = torch.cdist(shuffled_a, ordered).argmin(1)
    assert sorted(perm.tolist()) == list(range(len(ordered)))
    assert_rows(shuffled_a, ordered[perm])
    assert_rows(scores_a, ordered_scores[perm])


def test_shuffle_uses_the_global_rng_without_generator():
    generator = torch.Generator().manual_seed(12)
    boxes = torch.cat([torch.rand(20, 2, generator=generator) * 0.8 + 0.1, torch.full((20, 2), 0.05)], 1)
    scores = torch.rand(20, generator=generator) * 0.8 + 0.2
    torch.manual_seed(123)
    first, _ = select(boxes, scores, shuffle=True)
    torch.manual_seed(123)
    second, _ = select(boxes, scores, shuffle=True)
    assert_rows(first, second)


def test_match_boxes_to_regions_argmax_iou():
    regions = GRID
    boxes = cxcywh([0.74, 0.76, 0.18, 0.2], [0.26, 0.25, 0.2, 0.22], [0.7, 0.3, 0.1, 0.1])
    assert match_boxes_to_regions(boxes, regions).tolist() == [3, 0, 1]
    empty = match_boxes_to_regions(NO_BOXES, regions)
    assert empty.shape == (0,)
    assert empty.dtype == torch.long


@pytest.mark.parametrize("max_regions", [1, 2])
def test_max_regions_applies_to_user_boxes_too(max_regions):
    user = GRID[[2, 1, 0]]
    regions, _ = select(GRID, [0.9, 0.8, 0.7, 0.6], refer=user, max_regions=max_regions)
    assert_rows(regions, user[:max_regions])


def test_a_box_overlapping_no_given_region_is_reported(caplog):
    regions = [cxcywh([0.2, 0.2, 0.1, 0.1], [0.4, 0.2, 0.1, 0.1])]
    logger = "transformers_groma.modeling.region_selection"
    with caplog.at_level("WARNING", logger=logger):
        warn_about_unmatched_boxes([cxcywh([0.22, 0.2, 0.1, 0.1])], regions)
        assert caplog.text == ""
        warn_about_unmatched_boxes([cxcywh([0.8, 0.8, 0.2, 0.2])], regions)
    assert "overlaps none of the given `region_boxes`" in caplog.text
