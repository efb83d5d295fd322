"""The README's quickstart runs as written against a saved tiny model."""

import re
from pathlib import Path

from transformers_groma.cli import demo_image
from transformers_groma.tiny import tiny_groma_model, tiny_groma_processor


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
    tiny_groma_model().save_pretrained(model_dir)
    tiny_groma_processor().save_pretrained(model_dir)
    demo_image(112).save(tmp_path / "dog.jpg")
    code = quickstart_code()
    assert len(code.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(code.replace('"groma-7b-finetune-native"', repr(str(model_dir))), namespace)
    assert (tmp_path / "dog-grounded.png").is_file()
    assert set(namespace["result"]) == {"text", "entities"}
