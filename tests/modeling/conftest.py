import pytest
import torch


# The tiny models are far faster on one thread than on a contended pool (2 cores, parallel jobs).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    """Every modeling test starts from the same global RNG state."""
    torch.manual_seed(0)
    yield
