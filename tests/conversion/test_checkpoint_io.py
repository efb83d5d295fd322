"""Reading original checkpoints: a `.bin` pickle that would run code when unpickled is refused."""

import pytest
import torch

from transformers_groma.conversion.checkpoint_io import load_original_state_dict


class RunsCodeWhenUnpickled:
    """Unpickling this calls `exec` on a statement that writes a marker file (a stand-in for any payload)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_a_code_executing_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    torch.save(
        {"model.weight": torch.zeros(2), "payload": RunsCodeWhenUnpickled(marker)}, checkpoint / "pytorch_model.bin"
    )
    with pytest.raises(ValueError, match="Weights only load failed"):
        load_original_state_dict(checkpoint)
    assert not marker.exists()
    # the payload is real: a plain (unsafe) unpickling runs it
    torch.load(checkpoint / "pytorch_model.bin", weights_only=False)
    assert marker.read_text() == "ran"


def test_a_tensor_only_pickle_loads(tmp_path):
    torch.save({"model.weight": torch.arange(3.0)}, tmp_path / "pytorch_model.bin")
    assert torch.equal(load_original_state_dict(tmp_path)["model.weight"], torch.arange(3.0))
