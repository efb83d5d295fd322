"""Saved folders load with `trust_remote_code=True` in a Python that cannot import this package, and give the same
outputs as the package; without `trust_remote_code`, `AutoProcessor` refuses instead of returning a bare tokenizer."""

import ast
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from transformers_groma import GromaForRegionProposal
from transformers_groma.remote_code import bundle_sources
from transformers_groma.tiny import (
    tiny_groma_config,
    tiny_groma_model,
    tiny_groma_processor,
    tiny_groundinggpt_model,
    tiny_groundinggpt_processor,
)


# Runs in a fresh interpreter whose import system refuses `transformers_groma`; prints one JSON line of outputs.
REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class HidePackage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "transformers_groma":
                raise ModuleNotFoundError(f"No module named {name!r}")

    sys.meta_path.insert(0, HidePackage())
    try:
        import transformers_groma  # noqa: F401
        raise SystemExit("transformers_groma is importable")
    except ModuleNotFoundError:
        pass

    import numpy as np
    import torch
    from transformers import (
        AutoConfig, AutoFeatureExtractor, AutoImageProcessor, AutoModelForImageTextToText,
        AutoModelForObjectDetection, AutoProcessor, AutoVideoProcessor,
    )

    groma, groundinggpt, detector, inputs_file = sys.argv[1:]
    inputs = np.load(inputs_file)
    results = {}
    try:
        AutoProcessor.from_pretrained(groma)
    except ValueError as error:
        results["no_trust"] = str(error)

    config = AutoConfig.from_pretrained(groma, trust_remote_code=True)
    model = AutoModelForImageTextToText.from_pretrained(groma, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(groma, trust_remote_code=True)
    image = inputs["image"]
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is <p>it</p>?"}]}],
        add_generation_prompt=True,
    )
    batch = processor(images=image, text=prompt, return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=6, do_sample=False, return_dict_in_generate=True)
    new_tokens = out.sequences[:, batch["input_ids"].shape[1]:]
    results["groma"] = {
        "classes": [type(config).__module__, type(model).__module__, type(processor).__module__],
        "pixel_values": batch["pixel_values"].sum().item(),
        "tokens": out.sequences.tolist(),
        "region_boxes": out.region_boxes[0].tolist(),
        "grounding": processor.post_process_grounding(new_tokens, out.region_boxes, [image.shape[:2]]),
    }

    model = AutoModelForImageTextToText.from_pretrained(groundinggpt, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(groundinggpt, trust_remote_code=True)
    for auto_class in (AutoImageProcessor, AutoVideoProcessor, AutoFeatureExtractor):
        auto_class.from_pretrained(groundinggpt, trust_remote_code=True)
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "audio"}, {"type": "text", "text": "where?"}]}],
        add_generation_prompt=True,
    )
    batch = processor(text=prompt, images=image, audio=inputs["audio"], sampling_rate=16000, return_tensors="pt")
    tokens = model.generate(**batch, max_new_tokens=6, do_sample=False)
    results["groundinggpt"] = {
        "classes": [type(model).__module__, type(processor).__module__],
        "input_features": batch["input_features"].sum().item(),
        "tokens": tokens.tolist(),
    }

    model = AutoModelForObjectDetection.from_pretrained(detector, trust_remote_code=True).eval()
    image_processor = AutoImageProcessor.from_pretrained(detector, trust_remote_code=True)
    with torch.no_grad():
        outputs = model(**image_processor(images=image, return_tensors="pt"))
    (detections,) = image_processor.post_process_object_detection(outputs, 0.0, [image.shape[:2]])
    results["detector"] = {"scores": detections["scores"].tolist(), "boxes": detections["boxes"].tolist()}
    print("RESULTS " + json.dumps(results))
    """
)


def run_without_package(tmp_path, *arguments: str) -> dict:
    script = tmp_path / "remote.py"
    script.write_text(REMOTE_SCRIPT)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    completed = subprocess.run(
        [sys.executable, str(script), *arguments],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # (transformers' trust prompt, answered by the closed stdin, may precede the line without a newline)
    return json.loads(completed.stdout.rsplit("RESULTS ", 1)[1])


def test_folders_load_and_match_the_package_without_it(tmp_path):
    groma_dir, groundinggpt_dir, detector_dir = (tmp_path / name for name in ("groma", "groundinggpt", "detector"))
    groma_model, groma_processor = tiny_groma_model(box_score_threshold=0.0).eval(), tiny_groma_processor()
    groma_model.save_pretrained(groma_dir)
    groma_processor.save_pretrained(groma_dir)
    groundinggpt_model, groundinggpt_processor = tiny_groundinggpt_model().eval(), tiny_groundinggpt_processor()
    groundinggpt_model.save_pretrained(groundinggpt_dir)
    groundinggpt_processor.save_pretrained(groundinggpt_dir)
    torch.manual_seed(0)
    detector = GromaForRegionProposal(tiny_groma_config()).eval()
    detector.save_pretrained(detector_dir)
    groma_processor.image_processor.save_pretrained(detector_dir)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    audio = (0.3 * np.sin(np.arange(3 * 16000) / 5)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", image=image, audio=audio)

    remote = run_without_package(
        tmp_path, str(groma_dir), str(groundinggpt_dir), str(detector_dir), str(tmp_path / "inputs.npz")
    )

    assert "trust_remote_code=True" in remote["no_trust"]
    assert all(module.startswith("transformers_modules.") for module in remote["groma"]["classes"])
    assert all(module.startswith("transformers_modules.") for module in remote["groundinggpt"]["classes"])

    prompt = groma_processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is <p>it</p>?"}]}],
        add_generation_prompt=True,
    )
    batch = groma_processor(images=image, text=prompt, return_tensors="pt")
    out = groma_model.generate(**batch, max_new_tokens=6, do_sample=False, return_dict_in_generate=True)
    new_tokens = out.sequences[:, batch["input_ids"].shape[1] :]
    grounding = groma_processor.post_process_grounding(new_tokens, out.region_boxes, [image.shape[:2]])
    assert remote["groma"]["pixel_values"] == pytest.approx(batch["pixel_values"].sum().item())
    assert remote["groma"]["tokens"] == out.sequences.tolist()
    torch.testing.assert_close(torch.tensor(remote["groma"]["region_boxes"]), out.region_boxes[0], rtol=0, atol=1e-6)
    assert json.loads(json.dumps(grounding)) == remote["groma"]["grounding"]

    prompt = groundinggpt_processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "audio"}, {"type": "text", "text": "where?"}]}],
        add_generation_prompt=True,
    )
    batch = groundinggpt_processor(
        text=prompt, images=Image.fromarray(image), audio=audio, sampling_rate=16000, return_tensors="pt"
    )
    assert remote["groundinggpt"]["input_features"] == pytest.approx(batch["input_features"].sum().item())
    assert remote["groundinggpt"]["tokens"] == groundinggpt_model.generate(**batch, max_new_tokens=6).tolist()

    with torch.no_grad():
        outputs = detector(**groma_processor.image_processor(images=image, return_tensors="pt"))
    (detections,) = groma_processor.image_processor.post_process_object_detection(outputs, 0.0, [image.shape[:2]])
    assert remote["detector"]["scores"] == pytest.approx(detections["scores"].tolist(), abs=1e-6)
    torch.testing.assert_close(torch.tensor(remote["detector"]["boxes"]), detections["boxes"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("family", ["groma", "groundinggpt"])
def test_bundle_imports_only_its_own_modules_with_one_dot(family):
    sources = bundle_sources(family)
    stems = {name.removesuffix(".py") for name in sources}
    for name, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                assert not any(alias.name.startswith("transformers_groma") for alias in node.names), name
            elif isinstance(node, ast.ImportFrom):
                assert node.level in (0, 1) and not (node.module or "").startswith("transformers_groma"), name
                assert node.level == 0 or node.module in stems, (name, node.module)
