"""`groma-convert` on bad inputs and faults: clear errors naming the argument or file, and no user data lost."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from transformers_groma.conversion import main

from ..conversion.test_convert_cli import TINY_ARGS, copy_fixture
from ..fixtures import GROMA_FIXTURE, requires_groma_fixture


pytestmark = requires_groma_fixture
SRC = Path(__file__).resolve().parents[2] / "src"


def convert(input_dir, output_dir, *extra):
    main(["--input_dir", str(input_dir), "--output_dir", str(output_dir), *TINY_ARGS, *extra])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def converted_folder(tmp_path) -> Path:
    out = tmp_path / "out"
    convert(GROMA_FIXTURE, out)
    return out


@pytest.mark.parametrize("where", ["same", "inside"])
def test_output_dir_equal_to_or_inside_input_dir_is_refused(tmp_path, where):
    original = copy_fixture(tmp_path)
    before = snapshot(original)
    output = original if where == "same" else original / "native"
    with pytest.raises(ValueError, match="--output_dir .* apart from --input_dir"):
        convert(original, output, "--overwrite")
    assert snapshot(original) == before


def test_output_dir_holding_the_input_is_refused_even_with_overwrite(tmp_path):
    original = copy_fixture(tmp_path)
    before = snapshot(original)
    with pytest.raises(ValueError, match="apart from --input_dir"):
        convert(original, tmp_path, "--overwrite")
    assert snapshot(original) == before


def test_overwrite_never_deletes_files_it_did_not_write(tmp_path):
    out = converted_folder(tmp_path)
    (out / "notes.txt").write_text("user data")
    (out / "eval").mkdir()
    (out / "eval" / "results.json").write_text("{}")
    before = snapshot(out)
    with pytest.raises(FileExistsError, match=r"notes\.txt"):
        convert(GROMA_FIXTURE, out, "--overwrite")
    assert snapshot(out) == before


def test_overwrite_replaces_a_converted_folder_and_leaves_nothing_beside_it(tmp_path):
    out = converted_folder(tmp_path)
    (out / "model.safetensors").write_bytes(b"stale")
    convert(GROMA_FIXTURE, out, "--overwrite")
    assert load_file(out / "model.safetensors")  # the stale file was replaced by a readable one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_float16_overflow_is_refused_before_writing(tmp_path):
    original = copy_fixture(tmp_path)
    state_dict = load_file(original / "model.safetensors")
    name = next(k for k in sorted(state_dict) if k.endswith("lm_head.weight"))
    state_dict[name][0, 0] = 1e6  # beyond float16's largest value, 65504
    save_file(state_dict, original / "model.safetensors")
    with pytest.raises(ValueError, match=r"float16 cannot hold .*lm_head\.weight"):
        convert(original, tmp_path / "out", "--dtype", "float16")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [original.name]


def test_legacy_non_zip_pickle_converts(tmp_path):
    original = copy_fixture(tmp_path, "bin")
    state_dict = torch.load(original / "pytorch_model.bin", weights_only=True)
    torch.save(state_dict, original / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    convert(original, tmp_path / "out")
    reference = load_file(converted_folder(tmp_path / "ref") / "model.safetensors")
    converted = load_file(tmp_path / "out" / "model.safetensors")
    assert converted.keys() == reference.keys()
    assert all(torch.equal(converted[k], reference[k]) for k in reference)


def test_corrupt_config_json_is_named(tmp_path):
    original = copy_fixture(tmp_path)
    (original / "config.json").write_text('{"model_type": "groma",')
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        convert(original, tmp_path / "out")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_weight_file_is_named(tmp_path, damage):
    original = copy_fixture(tmp_path)
    weights = original / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a safetensors file at all")
    with pytest.raises(ValueError, match=r"Cannot read the weights in .*model\.safetensors"):
        convert(original, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def run_killed_conversion(tmp_path, output: Path, kill_on: str, *extra: str) -> subprocess.CompletedProcess:
    """Run the converter in a child process that SIGKILLs itself at the named moment."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from transformers_groma.conversion import convert_groma_to_hf, main

        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        if {kill_on!r} == "saving":  # in the middle of writing the staging folder
            convert_groma_to_hf.verify_saved_weights = die
        else:  # between moving the old output aside and moving the new one in: the worst moment
            rename = Path.rename
            def rename_then_die(self, target):
                result = rename(self, target)
                if ".replaced-" in str(target):
                    die()
                return result
            Path.rename = rename_then_die
        main(sys.argv[1:])
        """
    )
    args = ["--input_dir", str(GROMA_FIXTURE), "--output_dir", str(output), *TINY_ARGS, *extra]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    return result


def test_killed_conversion_leftovers_are_cleaned_up_and_reported(tmp_path, capsys):
    out = tmp_path / "out"
    run_killed_conversion(tmp_path, out, "saving")
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".out.staging-")  # the fault really hit mid-write
    convert(GROMA_FIXTURE, out)
    assert "left by an interrupted conversion" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert not (out / ".groma-convert-staging").exists()


def test_kill_during_overwrite_swap_loses_nothing(tmp_path, capsys):
    out = converted_folder(tmp_path)
    before = snapshot(out)
    run_killed_conversion(tmp_path, out, "swap", "--overwrite")
    assert not out.exists()  # killed with the old output moved aside and the new one not yet in place
    with pytest.raises(FileExistsError, match="not empty"):  # the next run restores it, and needs --overwrite again
        convert(GROMA_FIXTURE, out)
    assert "restored" in capsys.readouterr().out
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_corrupt_index_json_is_named(tmp_path):
    original = copy_fixture(tmp_path, "sharded-bin")
    (original / "pytorch_model.bin.index.json").write_text(json.dumps({"weights": {}}))
    with pytest.raises(ValueError, match=r"pytorch_model\.bin\.index\.json"):
        convert(original, tmp_path / "out")
