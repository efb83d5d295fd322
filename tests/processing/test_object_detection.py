"""`GromaImageProcessor.post_process_object_detection` turns proposals into pixel detections, and
`pipeline("object-detection")` runs `GromaForRegionProposal` with it."""

import pytest
import torch
from transformers import pipeline

from transformers_groma import GromaForRegionProposal, GromaImageProcessor
from transformers_groma.cli import demo_image
from transformers_groma.modeling.outputs import GromaRegionProposalOutput
from transformers_groma.tiny import tiny_groma_config, tiny_groma_processor


def proposals() -> GromaRegionProposalOutput:
    """Two images, three proposals each (normalized cxcywh)."""
    boxes = torch.tensor(
        [
            [[0.5, 0.5, 0.2, 0.4], [0.25, 0.25, 0.5, 0.5], [0.52, 0.5, 0.2, 0.4]],
            [[0.1, 0.1, 0.2, 0.2], [0.9, 0.9, 0.2, 0.2], [0.5, 0.5, 1.0, 1.0]],
        ]
    )
    scores = torch.tensor([[0.3, 0.9, 0.6], [0.05, 0.2, 0.7]])
    return GromaRegionProposalOutput(pred_boxes=boxes, scores=scores)


def test_detections_are_pixel_boxes_sorted_by_score_above_the_threshold():
    processor = GromaImageProcessor()
    first, second = processor.post_process_object_detection(proposals(), threshold=0.25, target_sizes=[(100, 200)] * 2)
    assert first["scores"].tolist() == pytest.approx([0.9, 0.6, 0.3])
    assert first["labels"].tolist() == [0, 0, 0]
    # (0.25, 0.25, 0.5, 0.5) on a 200 x 100 image -> x 0..100, y 0..50
    assert first["boxes"][0].tolist() == pytest.approx([0.0, 0.0, 100.0, 50.0])
    assert first["boxes"][1].tolist() == pytest.approx([84.0, 30.0, 124.0, 70.0])
    assert second["scores"].tolist() == pytest.approx([0.7])
    assert second["boxes"].tolist() == [pytest.approx([0.0, 0.0, 200.0, 100.0])]


def test_without_target_sizes_boxes_stay_normalized_and_nms_drops_overlaps():
    processor = GromaImageProcessor()
    (first, _) = processor.post_process_object_detection(proposals(), threshold=0.0, nms_threshold=0.5)
    # the 0.3 box overlaps the 0.6 box (IoU 0.82) and goes; the 0.9 box overlaps neither
    assert first["scores"].tolist() == pytest.approx([0.9, 0.6])
    assert first["boxes"][1].tolist() == pytest.approx([0.42, 0.3, 0.62, 0.7])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"nms_threshold": -0.1}, "nms_threshold"),
        ({"target_sizes": [(10, 10)]}, "one \\(height, width\\) per image"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GromaImageProcessor().post_process_object_detection(proposals(), **kwargs)


def test_mismatched_outputs_are_rejected():
    outputs = GromaRegionProposalOutput(pred_boxes=torch.zeros(1, 3, 4), scores=torch.zeros(1, 2))
    with pytest.raises(ValueError, match="pred_boxes"):
        GromaImageProcessor().post_process_object_detection(outputs)


def test_object_detection_pipeline_runs_the_region_proposer(tmp_path):
    torch.manual_seed(0)
    model = GromaForRegionProposal(tiny_groma_config()).eval()
    model.save_pretrained(tmp_path)
    image_processor = tiny_groma_processor().image_processor
    image_processor.save_pretrained(tmp_path)
    detector = pipeline("object-detection", model=str(tmp_path))
    assert isinstance(detector.model, GromaForRegionProposal)
    image = demo_image(112).resize((160, 120))
    detections = detector(image, threshold=0.0)

    with torch.no_grad():
        outputs = model(**image_processor(images=image, return_tensors="pt"))
    (expected,) = image_processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=[(120, 160)])
    assert len(detections) == len(expected["scores"]) == model.config.proposer_config.num_queries
    assert [detection["score"] for detection in detections] == pytest.approx(expected["scores"].tolist())
    assert detections[0]["box"] == dict(zip(("xmin", "ymin", "xmax", "ymax"), expected["boxes"][0].int().tolist()))
    assert {detection["label"] for detection in detections} == {model.config.id2label[0]}
    batched = detector([image, image.transpose(0)], threshold=0.0, batch_size=2)
    assert [item["box"] for item in batched[0]] == [item["box"] for item in detections]
    assert [item["score"] for item in batched[0]] == pytest.approx([item["score"] for item in detections], abs=1e-6)
    assert len(batched[1]) == len(detections)
