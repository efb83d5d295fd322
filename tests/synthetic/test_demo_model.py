"""The shipped demo model in the synthetic world: the target bars, measured on scenes never used in training
(`write_datasets` seeds scenes below 10**9), through the Python API and through `groma predict --tiny`. The
metrics are taken on 200 scenes: on 50, one draw of scenes can move REC by several points.
"""

import json

import pytest
import torch

from transformers_groma import GromaForConditionalGeneration, GromaProcessor
from transformers_groma.cli import main
from transformers_groma.processing import GROUNDED_CAPTION_TEMPLATES, REC_TEMPLATES, rec_prompt, region_caption_prompt
from transformers_groma.synthetic import demo_model_path, generate_scene, referring_expression
from transformers_groma.synthetic.evaluation import evaluate_synthetic_grounding, iou, names_object


FRESH_SEEDS = range(2 * 10**9, 2 * 10**9 + 200)


@pytest.fixture(scope="module")
def demo():
    model = GromaForConditionalGeneration.from_pretrained(demo_model_path(), dtype=torch.float32).eval()
    return model, GromaProcessor.from_pretrained(demo_model_path())


@pytest.fixture(scope="module")
def metrics(demo):
    return evaluate_synthetic_grounding(*demo, FRESH_SEEDS)


def test_tokenizer_is_the_one_the_model_was_trained_with(demo):
    # trained with legacy=True: the word after an added token keeps its `▁` (`<p>`, `the` -> `▁the`)
    tokenizer = demo[1].tokenizer
    assert tokenizer.legacy is True
    assert tokenizer.tokenize("<p>the red square</p>") == ["<p>", "▁the", "▁red", "▁square", "</p>"]


def test_enough_fresh_scenes_and_phrasings(metrics):
    assert metrics["num_scenes"] >= 50
    assert metrics["num_objects"] >= max(len(REC_TEMPLATES), len(GROUNDED_CAPTION_TEMPLATES))


def test_proposer_recall(metrics):
    assert metrics["proposal_recall"] >= 0.98


def test_rec_accuracy(metrics):
    assert metrics["rec_accuracy"] >= 0.95


def test_region_caption_accuracy(metrics):
    assert metrics["region_caption_accuracy"] >= 0.95


def test_grounded_captions(metrics):
    assert metrics["grounded_recall"] >= 0.90
    assert metrics["grounded_invented"] <= 0.05


@pytest.fixture(scope="module")
def cli_scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    scenes = [generate_scene(seed) for seed in range(3 * 10**9, 3 * 10**9 + 24)]
    for index, scene in enumerate(scenes):
        scene.image.save(folder / f"scene{index}.png")
    return [(scene, folder / f"scene{index}.png") for index, scene in enumerate(scenes)]


def answers_with(result: dict, obj) -> bool:
    """Whether the first box of a REC answer has IoU >= 0.5 with `obj`."""
    boxes = [box for entity in result["entities"] for box in entity["boxes"]]
    return bool(boxes) and iou(boxes[0], obj.box) >= 0.5


def run_cli(capsys, *options: str) -> list[dict]:
    main(["predict", "--tiny", *options, "--json", "--batch_size", "24"])
    return json.loads(capsys.readouterr().out)


def test_rec_through_the_cli(cli_scenes, capsys):
    pairs, targets = [], []
    for index, (scene, path) in enumerate(cli_scenes):
        obj = scene.objects[index % len(scene.objects)]
        pairs += ["--image", str(path), "--query", rec_prompt(referring_expression(obj), index % len(REC_TEMPLATES))]
        targets.append(obj)
    results = run_cli(capsys, *pairs, "--max_new_tokens", "8")
    assert [result["image"] for result in results] == [str(path) for _, path in cli_scenes]
    hits = [answers_with(result, obj) for result, obj in zip(results, targets)]
    assert sum(hits) / len(hits) >= 0.95


def test_grounded_caption_through_the_cli(cli_scenes, capsys):
    scene, path = cli_scenes[0]
    (grounded,) = run_cli(capsys, "--image", str(path), "--max_new_tokens", "64")  # default query: grounded caption
    for obj in scene.objects:
        assert any(
            names_object(entity["phrase"] or "", obj) and any(iou(box, obj.box) >= 0.5 for box in entity["boxes"])
            for entity in grounded["entities"]
        ), (grounded["text"], obj)


def test_region_captions_through_the_cli(cli_scenes, capsys):
    for scene, path in cli_scenes[:4]:
        obj = scene.objects[-1]
        box = ",".join(str(value) for value in obj.box)
        query = region_caption_prompt()
        (caption,) = run_cli(capsys, "--image", str(path), "--query", query, "--box", box, "--max_new_tokens", "8")
        assert names_object(caption["text"], obj), (caption["text"], obj.name)


def test_cli_answers_are_grounded_on_the_objects(cli_scenes, capsys):
    """What the shipped model already does: well-formed grounded captions whose boxes lie on the scene's objects."""
    options = [option for _, path in cli_scenes[:8] for option in ("--image", str(path))]
    results = run_cli(capsys, *options, "--max_new_tokens", "64")
    boxes = [
        (scene, box)
        for (scene, _), result in zip(cli_scenes, results)
        for e in result["entities"]
        for box in e["boxes"]
    ]
    assert len(boxes) >= 8
    on_objects = [max(iou(box, obj.box) for obj in scene.objects) >= 0.5 for scene, box in boxes]
    assert sum(on_objects) / len(on_objects) >= 0.9


def test_describing_every_region_through_the_cli(cli_scenes, capsys):
    """`--describe_regions`: the regions the model finds, each with its own region caption."""
    options = [option for _, path in cli_scenes for option in ("--image", str(path))]
    results = run_cli(capsys, *options, "--describe_regions", "--max_new_tokens", "8")
    named, on_objects = [], []
    for (scene, _), result in zip(cli_scenes, results, strict=True):
        entities = result["entities"]
        named += [
            any(iou(e["boxes"][0], obj.box) >= 0.5 and names_object(e["phrase"], obj) for e in entities)
            for obj in scene.objects
        ]
        on_objects += [max(iou(e["boxes"][0], obj.box) for obj in scene.objects) >= 0.5 for e in entities]
    assert sum(named) / len(named) >= 0.9
    assert sum(on_objects) / len(on_objects) >= 0.95
