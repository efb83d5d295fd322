"""The README's quickstart runs as written against a saved tiny model, and draws the box of a grounded answer."""

import re
from pathlib import Path

import pytest
from PIL import Image

from transformers_groma.cli import demo_image
from transformers_groma.modeling import GromaForConditionalGeneration
from transformers_groma.processing import BOX_COLORS
from transformers_groma.tiny import tiny_groma_model, tiny_groma_processor

from .test_pipeline import forced_answer, pixel_box


README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_code() -> str:
    section = README.read_text().split("## Quickstart", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_first_lines_are_the_two_setup_commands():
    block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1).strip().splitlines()
    assert len(block) == 2
    assert "groma predict --tiny" in block[0] and "pytest" in block[1]
    ci_script = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test]"' in ci_script and "python -m pytest -q -p no:cacheprovider" in ci_script


def test_quickstart_runs_against_a_saved_tiny_model(tmp_path, monkeypatch):
    model_dir = tmp_path / "tiny-groma"
    # A zero score threshold keeps every proposal, so that region 0 exists.
    tiny_groma_model(box_score_threshold=0.0).save_pretrained(model_dir)
    processor = tiny_groma_processor()
    processor.save_pretrained(model_dir)
    demo_image(112).save(tmp_path / "dog.jpg")
    code = quickstart_code()
    assert len(code.strip().splitlines()) <= 15

    # The random model answers with the markup of a grounded phrase: `<p>x</p><roi><r0></roi></s>`.
    generate = GromaForConditionalGeneration.generate
    monkeypatch.setattr(
        GromaForConditionalGeneration,
        "generate",
        lambda self, **kwargs: generate(self, **kwargs, logits_processor=forced_answer(processor)),
    )
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(code.replace('"groma-7b-finetune-native"', repr(str(model_dir))), namespace)

    (width, height) = namespace["image"].size
    box = pixel_box(namespace["out"].region_boxes[0][0].tolist(), width, height)
    assert namespace["result"] == {
        "text": "x",
        "entities": [{"phrase": "x", "boxes": [pytest.approx(box, abs=1e-4)], "region_indices": [0], "span": (0, 1)}],
    }
    x1, y1, x2, y2 = box
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    picture = Image.open(tmp_path / "dog-grounded.png")
    assert picture.getpixel((round(x1) + 1, round((y1 + y2) / 2))) == BOX_COLORS[0]
