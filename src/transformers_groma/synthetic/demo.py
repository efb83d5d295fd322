"""Where the demo model trained on the synthetic world is shipped (package data)."""

from pathlib import Path


DEMO_MODEL_DIR = Path(__file__).parent / "demo_model"


def demo_model_path() -> Path:
    """The folder of the shipped demo model: a Groma trained by the three stages on the synthetic world (a toy
    model of coloured shapes, not of real images). Load it with `GromaForConditionalGeneration.from_pretrained` and
    `GromaProcessor.from_pretrained`.

    Raises:
        FileNotFoundError: if the package was installed without it.
    """
    if not (DEMO_MODEL_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"The synthetic demo model is missing from this installation (expected at {DEMO_MODEL_DIR}); reinstall "
            "transformers-groma, or train it with examples/demo_model/train_demo.py."
        )
    return DEMO_MODEL_DIR
