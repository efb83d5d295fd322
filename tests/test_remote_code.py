"""Saved folders load with `trust_remote_code=True` in a Python that cannot import this package, and give the same
outputs as the package; without `trust_remote_code`, `AutoProcessor` refuses instead of returning a bare tokenizer."""

import ast
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from transformers_groma import GromaForRegionProposal
from transformers_groma.model_card import write_model_card
from transformers_groma.remote_code import bundle_sources
from transformers_groma.tiny import (
    tiny_groma_config,
    tiny_groma_model,
    tiny_groma_processor,
    tiny_groundinggpt_model,
    tiny_groundinggpt_processor,
)


SNIPPET = re.compile(r"```python\n(.*?)```", re.S)

# Runs in a fresh interpreter whose import system refuses `transformers_groma`: tries AutoProcessor without
# `trust_remote_code`, then runs the usage snippets of the model cards of the folders given (as written: their `repo`
# is the folder's name, the working directory holds dog.jpg), and prints one JSON line with what they computed.
REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, re, sys
    from pathlib import Path

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

    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoProcessor, AutoVideoProcessor

    results = {"snippets": {}}
    try:
        AutoProcessor.from_pretrained(sys.argv[1])
    except ValueError as error:
        results["no_trust"] = str(error)
    for auto_class in (AutoImageProcessor, AutoVideoProcessor, AutoFeatureExtractor):
        results.setdefault("sub_processors", []).append(
            type(auto_class.from_pretrained(sys.argv[2], trust_remote_code=True)).__module__
        )
    for folder in sys.argv[1:]:
        namespace = {}
        for block in re.findall(SNIPPET, (Path(folder) / "README.md").read_text(), re.S):
            exec(block, namespace)
        model = namespace.get("model", namespace.get("detector") and namespace["detector"].model)
        results["snippets"][folder] = {
            "module": type(model).__module__,
            "shown": namespace.get("result", namespace.get("detections")),
        }
    print("RESULTS " + json.dumps(results))
    """
).replace("SNIPPET", repr(SNIPPET.pattern))


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


def run_snippets_with_package(folder) -> dict:
    """The card's snippets run here, with the package's classes (`trust_remote_code` left out)."""
    namespace = {}
    for block in SNIPPET.findall((folder / "README.md").read_text()):
        exec(block.replace(", trust_remote_code=True", ""), namespace)
    return json.loads(json.dumps(namespace.get("result", namespace.get("detections"))))


def test_folders_and_their_cards_work_without_the_package(tmp_path, monkeypatch):
    torch.manual_seed(0)
    groma = tiny_groma_model(box_score_threshold=0.0).eval()
    detector = GromaForRegionProposal(tiny_groma_config()).eval()
    with torch.no_grad():  # confident proposals, so that the card's threshold keeps some
        for head in [*detector.region_proposer.coco_class_heads, *detector.region_proposer.sa1b_class_heads]:
            head.bias.fill_(4.0)
    groundinggpt = tiny_groundinggpt_model().eval()
    for name, model, processor, source in (
        ("groma", groma, tiny_groma_processor(), "FoundationVision/groma-7b-finetune"),
        ("groundinggpt", groundinggpt, tiny_groundinggpt_processor(), "zwli/GroundingGPT"),
        ("detector", detector, tiny_groma_processor().image_processor, "FoundationVision/groma-det-pretrain"),
    ):
        model.save_pretrained(tmp_path / name)
        processor.save_pretrained(tmp_path / name)
        write_model_card(tmp_path / name, model.config, "converted", source=source, repo_id=name)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(tmp_path / "dog.jpg")

    remote = run_without_package(tmp_path, "groma", "groundinggpt", "detector")

    assert "trust_remote_code=True" in remote["no_trust"]
    assert all(module.startswith("transformers_modules.") for module in remote["sub_processors"])
    monkeypatch.chdir(tmp_path)
    for name in ("groma", "groundinggpt", "detector"):
        assert remote["snippets"][name]["module"].startswith("transformers_modules."), name
        assert remote["snippets"][name]["shown"] == run_snippets_with_package(tmp_path / name), name
    assert remote["snippets"]["detector"]["shown"], "the detector's snippet found nothing"
    assert set(remote["snippets"]["groma"]["shown"]) == {"text", "entities"}
    assert set(remote["snippets"]["groundinggpt"]["shown"]) == {"text", "boxes", "time_spans"}


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
