"""Region proposer (spec §1.5), its legacy flags, and `GromaForRegionProposal` (detection pretraining)."""

from types import SimpleNamespace

import pytest
import torch
from transformers.loss.loss_deformable_detr import DeformableDetrForObjectDetectionLoss

from transformers_groma import GromaForRegionProposal, GromaRegionProposerConfig
from transformers_groma.modeling import GromaForConditionalGeneration, GromaRegionProposerOutput
from transformers_groma.modeling.loss import detection_loss
from transformers_groma.tiny import tiny_groma_config

from .groma_test_utils import GRID, NO_DROPOUT, cxcywh, make_prompt, perturb_parameters, pixels, proposer_overrides


def make_detector(seed=0, **proposer_fields):
    torch.manual_seed(seed)
    config = tiny_groma_config(proposer_config=proposer_overrides(**NO_DROPOUT, **proposer_fields))
    return GromaForRegionProposal(config).eval()


def test_proposal_shapes_and_ranges():
    model = make_detector()
    with torch.no_grad():
        out = model(pixels(2))
    assert out.pred_boxes.shape == (2, 30, 4)
    assert out.scores.shape == (2, 30)
    assert out.logits_coco.shape == out.logits_sa1b.shape == (2, 30)
    assert out.all_pred_boxes.shape == (2, 2, 30, 4)
    assert out.all_logits_coco.shape == out.all_logits_sa1b.shape == (2, 2, 30)
    assert out.encoder_logits.shape == (2, 64, 1)
    assert out.encoder_pred_boxes.shape == (2, 64, 4)
    assert out.init_reference_points.shape == (2, 30, 4)
    assert out.intermediate_reference_points.shape == (2, 2, 30, 4)
    assert out.encoder_last_hidden_state.shape == (2, 64, 64)
    assert out.last_hidden_state.shape == (2, 30, 64)
    assert ((out.pred_boxes > 0) & (out.pred_boxes < 1)).all()
    assert ((out.scores > 0) & (out.scores < 1)).all()
    assert out.loss is None and out.loss_dict is None
    torch.testing.assert_close(out.pred_boxes, out.all_pred_boxes[:, -1], rtol=0, atol=0)
    # images are independent
    with torch.no_grad():
        single = model(pixels(2)[1:])
    torch.testing.assert_close(single.pred_boxes[0], out.pred_boxes[1], rtol=1e-5, atol=1e-5)


def test_scores_fuse_the_two_heads():
    model = make_detector(coco_score_exponent=0.3, sa1b_score_exponent=0.7)
    perturb_parameters(model, std=0.2)
    with torch.no_grad():
        out = model(pixels(1))
    expected = out.logits_coco.sigmoid() ** 0.3 * out.logits_sa1b.sigmoid() ** 0.7
    torch.testing.assert_close(out.scores, expected)
    assert not torch.allclose(out.logits_coco, out.logits_sa1b)


def test_fresh_objectness_prior():
    # class biases start at -log(99): sigmoid = 0.01, so the fused score of a fresh model is ~0.01
    model = make_detector()
    with torch.no_grad():
        out = model(pixels(1))
    torch.testing.assert_close(out.scores, torch.full_like(out.scores, 0.01), rtol=0, atol=0.01)
    for head in [model.region_proposer.encoder_class_head, *model.region_proposer.coco_class_heads]:
        torch.testing.assert_close(head.bias, torch.tensor([-4.59512]), rtol=0, atol=1e-4)


def test_initial_references_are_the_top_encoder_proposals():
    model = make_detector()
    perturb_parameters(model)
    with torch.no_grad():
        out = model(pixels(1))
    top = out.encoder_logits[0, :, 0].topk(30).indices
    torch.testing.assert_close(out.init_reference_points[0], out.encoder_pred_boxes[0, top], rtol=1e-6, atol=1e-6)


def _flag_pair(flag):
    legacy = make_detector(**{flag: True})
    perturb_parameters(legacy)  # non-zero box deltas, so refinement matters
    fixed = make_detector(seed=1, **{flag: False})
    fixed.load_state_dict(legacy.state_dict())
    with torch.no_grad():
        return legacy, fixed, legacy(pixels(1)), fixed(pixels(1))


def test_frozen_reference_points_flag():
    legacy, fixed, a, b = _flag_pair("legacy_frozen_reference_points")
    # encoder and query selection untouched
    torch.testing.assert_close(a.encoder_last_hidden_state, b.encoder_last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(a.init_reference_points, b.init_reference_points, rtol=0, atol=0)
    # decoder layer 0 samples around the initial references either way; layer 1 differs
    torch.testing.assert_close(a.all_pred_boxes[:, 0], b.all_pred_boxes[:, 0], rtol=0, atol=0)
    assert not torch.allclose(a.all_pred_boxes[:, 1], b.all_pred_boxes[:, 1], atol=1e-5)
    assert not torch.allclose(a.scores, b.scores)
    # layer 0 refines the initial references in both variants (its refined reference is layer 1's box origin)
    torch.testing.assert_close(
        a.intermediate_reference_points[:, 0], b.intermediate_reference_points[:, 0], rtol=0, atol=0
    )


def test_standard_refinement_detaches_each_layers_boxes():
    # Without the legacy flag, a layer's boxes start from the previous layer's detached boxes (transformers'
    # Deformable-DETR): the loss on layer 1 gives no gradient to layer 0's box head.
    model = make_detector(legacy_frozen_reference_points=False)
    model(pixels(1)).all_pred_boxes[:, 1].sum().backward()
    assert model.region_proposer.bbox_heads[1].layers[-1].weight.grad.abs().sum() > 0
    assert model.region_proposer.bbox_heads[0].layers[-1].weight.grad.abs().sum() == 0
    legacy = make_detector(legacy_frozen_reference_points=True)  # the original lets it flow
    legacy(pixels(1)).all_pred_boxes[:, 1].sum().backward()
    assert legacy.region_proposer.bbox_heads[0].layers[-1].weight.grad.abs().sum() > 0


def test_too_few_feature_positions_for_the_queries_is_a_clear_error():
    with pytest.raises(ValueError, match="num_queries=30 of its 4x4 = 16 feature positions"):
        make_detector()(torch.zeros(1, 3, 56, 56))


def _sampling_references(model) -> tuple[list[torch.Tensor], object]:
    """The reference boxes every decoder layer samples around, and the proposer output."""
    seen = []

    def record(module, args, kwargs):
        seen.append(kwargs["reference_points"][:, :, 0])

    hooks = [
        layer.register_forward_pre_hook(record, with_kwargs=True) for layer in model.region_proposer.decoder_layers
    ]
    try:
        with torch.no_grad():
            out = model(pixels(1))
    finally:
        for hook in hooks:
            hook.remove()
    return seen, out


def test_frozen_reference_points_means_every_layer_samples_the_initial_references():
    legacy, fixed, _, _ = _flag_pair("legacy_frozen_reference_points")
    seen, out = _sampling_references(legacy)
    torch.testing.assert_close(seen[0], out.init_reference_points, rtol=0, atol=0)
    torch.testing.assert_close(seen[1], out.init_reference_points, rtol=0, atol=0)
    seen, out = _sampling_references(fixed)
    torch.testing.assert_close(seen[0], out.init_reference_points, rtol=0, atol=0)
    torch.testing.assert_close(seen[1], out.intermediate_reference_points[:, 0], rtol=0, atol=0)
    assert not torch.allclose(seen[1], out.init_reference_points)


def test_learned_query_content_flag():
    legacy, fixed, a, b = _flag_pair("legacy_learned_query_content")
    torch.testing.assert_close(a.encoder_last_hidden_state, b.encoder_last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(a.init_reference_points, b.init_reference_points, rtol=0, atol=0)
    assert not torch.allclose(a.pred_boxes, b.pred_boxes, atol=1e-5)
    # the learned table is the content only in the legacy variant
    for model, uses_table in ((legacy, True), (fixed, False)):
        with torch.no_grad():
            before = model(pixels(1)).pred_boxes
            model.region_proposer.query_embeddings.weight.add_(1.0)
            after = model(pixels(1)).pred_boxes
        assert (not torch.equal(before, after)) == uses_table


@pytest.mark.parametrize("flag", ["legacy_frozen_reference_points", "legacy_learned_query_content"])
def test_proposer_flags_change_proposals_only(flag):
    models = []
    for value in (True, False):
        torch.manual_seed(0)
        config = tiny_groma_config(box_score_threshold=0.0, proposer_config=proposer_overrides(**{flag: value}))
        models.append(GromaForConditionalGeneration(config).eval())
    perturb_parameters(models[0])
    models[1].load_state_dict(models[0].state_dict())
    prompt = make_prompt()[None]
    with torch.no_grad():
        proposed = [m(input_ids=prompt, pixel_values=pixels(1)) for m in models]
        given = [m(input_ids=prompt, pixel_values=pixels(1), region_boxes=[GRID]) for m in models]
        states, grid = models[0].model.encode_image(pixels(1))
        image_features = [m.model.project_image_features(states, grid) for m in models]
    assert not torch.allclose(proposed[0].region_boxes[0], proposed[1].region_boxes[0])
    torch.testing.assert_close(given[0].logits, given[1].logits, rtol=0, atol=0)
    torch.testing.assert_close(*image_features, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------------
# GromaForRegionProposal: detection loss
# ---------------------------------------------------------------------------------------------------------------------


LABELS = [
    {"boxes": cxcywh([0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]), "source": "coco"},
    {"boxes": cxcywh([0.5, 0.5, 0.4, 0.4]), "source": "sa1b"},
]


def _heads(model, name):
    return list(getattr(model.region_proposer, name).parameters())


def _grad_norm(params):
    return sum(0.0 if p.grad is None else p.grad.abs().sum().item() for p in params)


def test_detection_loss_and_terms():
    model = make_detector()
    model.train()
    out = model(pixels(2), labels=LABELS)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and out.loss > 0
    terms = out.loss_dict
    for suffix in ("", "_0", "_enc"):  # last layer, auxiliary layer 0, two-stage encoder
        for name in ("loss_ce", "loss_bbox", "loss_giou"):
            assert f"{name}{suffix}" in terms
    assert "loss_ce_1" not in terms  # 2 decoder layers: one auxiliary layer
    weights = {"loss_ce": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0}
    expected = sum(
        weight * terms[f"{name}{suffix}"] for name, weight in weights.items() for suffix in ("", "_0", "_enc")
    )
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert _grad_norm(model.region_proposer.parameters()) > 0
    for name, param in model.region_proposer.named_parameters():
        assert param.grad is not None, name


def test_without_auxiliary_loss():
    model = make_detector(auxiliary_loss=False)
    out = model(pixels(2), labels=LABELS)
    assert "loss_ce_0" not in out.loss_dict
    assert {"loss_ce", "loss_bbox", "loss_giou", "loss_ce_enc"} <= set(out.loss_dict)


@pytest.mark.parametrize(("source", "trained", "untouched"), [("sa1b", "sa1b", "coco"), ("coco", "coco", "sa1b")])
def test_source_selects_the_objectness_head(source, trained, untouched):
    model = make_detector()
    model.train()
    labels = [{"boxes": label["boxes"], "source": source} for label in LABELS]
    model(pixels(2), labels=labels).loss.backward()
    assert _grad_norm(_heads(model, f"{trained}_class_heads")) > 0
    assert _grad_norm(_heads(model, f"{untouched}_class_heads")) == 0
    assert _grad_norm(model.region_proposer.encoder_class_head.parameters()) > 0


def test_mixed_sources_train_both_heads_and_default_is_coco():
    model = make_detector()
    model(pixels(2), labels=LABELS).loss.backward()
    assert _grad_norm(_heads(model, "coco_class_heads")) > 0
    assert _grad_norm(_heads(model, "sa1b_class_heads")) > 0
    model.zero_grad(set_to_none=True)
    model(pixels(2), labels=[{"boxes": label["boxes"]} for label in LABELS]).loss.backward()
    assert _grad_norm(_heads(model, "sa1b_class_heads")) == 0
    assert _grad_norm(_heads(model, "coco_class_heads")) > 0


def test_source_changes_the_loss_accordingly():
    model = make_detector()
    perturb_parameters(model, std=0.2)
    with torch.no_grad():
        coco = model(pixels(2), labels=[{**label, "source": "coco"} for label in LABELS]).loss
        sa1b = model(pixels(2), labels=[{**label, "source": "sa1b"} for label in LABELS]).loss
    assert not torch.isclose(coco, sa1b)


def test_image_without_boxes():
    model = make_detector()
    out = model(pixels(2), labels=[LABELS[0], {"boxes": torch.zeros(0, 4)}])
    assert torch.isfinite(out.loss)


def test_bad_labels():
    model = make_detector()
    with pytest.raises(ValueError, match="source"):
        model(pixels(2), labels=[LABELS[0], {"boxes": LABELS[1]["boxes"], "source": "lvis"}])
    with pytest.raises(ValueError, match="1 entries for 2 images"):
        model(pixels(2), labels=LABELS[:1])


def test_region_proposal_model_loads_from_a_groma_checkpoint(tmp_path):
    torch.manual_seed(0)
    full = GromaForConditionalGeneration(tiny_groma_config()).eval()
    full.save_pretrained(tmp_path)
    detector = GromaForRegionProposal.from_pretrained(tmp_path).eval()
    full_state = full.model.state_dict()
    for key, value in detector.state_dict().items():
        assert torch.equal(value, full_state[key]), key
    with torch.no_grad():
        expected = full.model.get_region_proposals(*full.model.encode_image(pixels(1)))
        actual = detector(pixels(1))
    torch.testing.assert_close(actual.pred_boxes, expected.pred_boxes, rtol=0, atol=0)


def _hand_proposals() -> GromaRegionProposerOutput:
    """Two decoder layers and three queries on one image, where the matching depends on the cost weights: query 0
    has the right box of target 0 but a low score, query 1 a higher score and a box half-way between the targets:
    with the original weights (class 2, L1 5) query 0 matches target 0, with the two swapped query 1 does."""
    boxes = torch.tensor([[0.30, 0.30, 0.20, 0.20], [0.45, 0.45, 0.30, 0.30], [0.72, 0.70, 0.22, 0.20]])
    logits = torch.tensor([-2.0, 1.0, 0.5])
    return GromaRegionProposerOutput(
        pred_boxes=boxes[None],
        all_pred_boxes=torch.stack([boxes.roll(1, 0), boxes])[None],
        all_logits_coco=torch.stack([logits.flip(0), logits])[None],
        all_logits_sa1b=torch.zeros(1, 2, 3),
        encoder_logits=torch.tensor([[[1.0], [-1.0], [0.0], [2.0]]]),
        encoder_pred_boxes=torch.tensor(
            [[[0.3, 0.3, 0.2, 0.2], [0.5, 0.5, 0.4, 0.4], [0.7, 0.7, 0.2, 0.2], [0.1, 0.9, 0.1, 0.1]]]
        ),
    )


HAND_TARGETS = [{"boxes": torch.tensor([[0.30, 0.30, 0.20, 0.20], [0.70, 0.70, 0.20, 0.20]])}]


def _deformable_detr_terms(logits, pred_boxes, aux=None, class_cost=2.0, bbox_cost=5.0, focal_alpha=0.25):
    """transformers' Deformable-DETR detection loss terms with the original's settings (spec §6.2)."""
    config = SimpleNamespace(
        class_cost=class_cost, bbox_cost=bbox_cost, giou_cost=2.0, num_labels=1, focal_alpha=focal_alpha,
        auxiliary_loss=aux is not None, bbox_loss_coefficient=5.0, giou_loss_coefficient=2.0, decoder_layers=2,
    )  # fmt: skip
    labels = [
        {"boxes": t["boxes"], "class_labels": torch.zeros(len(t["boxes"]), dtype=torch.long)} for t in HAND_TARGETS
    ]
    outputs_class, outputs_coord = aux if aux is not None else (None, None)
    return DeformableDetrForObjectDetectionLoss(
        logits, labels, "cpu", pred_boxes, config, outputs_class=outputs_class, outputs_coord=outputs_coord
    )[1]


def test_detection_loss_terms_equal_deformable_detr_on_a_hand_case():
    proposals = _hand_proposals()
    config = GromaRegionProposerConfig()
    loss, terms = detection_loss(proposals, HAND_TARGETS, config)
    logits = proposals.all_logits_coco[..., None]  # (B, L, Q, 1)
    decoder = _deformable_detr_terms(
        logits[:, -1],
        proposals.all_pred_boxes[:, -1],
        aux=(logits.transpose(0, 1), proposals.all_pred_boxes.transpose(0, 1)),
    )
    encoder = _deformable_detr_terms(proposals.encoder_logits, proposals.encoder_pred_boxes)
    expected = {**decoder, **{f"{name}_enc": value for name, value in encoder.items()}}
    assert set(terms) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value, msg=name)
    weights = {"loss_ce": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0}  # the original's (spec §6.2)
    total = sum(
        weight * expected[f"{name}{suffix}"] for name, weight in weights.items() for suffix in ("", "_0", "_enc")
    )
    torch.testing.assert_close(loss, total)
    # the hand case tells the settings apart: swapped matching costs or another focal alpha change the terms
    swapped = _deformable_detr_terms(logits[:, -1], proposals.all_pred_boxes[:, -1], class_cost=5.0, bbox_cost=2.0)
    assert not torch.allclose(swapped["loss_bbox"], decoder["loss_bbox"])
    other_alpha = _deformable_detr_terms(logits[:, -1], proposals.all_pred_boxes[:, -1], focal_alpha=0.75)
    assert not torch.allclose(other_alpha["loss_ce"], decoder["loss_ce"])
