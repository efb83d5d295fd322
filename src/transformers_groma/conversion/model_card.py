"""Hub model card written next to a converted checkpoint."""

from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData
from torch import nn

from ..version import __version__


CARD_TEMPLATE = """---
{card_data}
---

# {title}

Groma ([arXiv 2404.13013](https://arxiv.org/abs/2404.13013)) converted to the native
[transformers-groma](https://github.com/) format (transformers-groma {version}) from the original checkpoint
`{source}` ({num_original_tensors} tensors; all keys mapped, reloaded weights checked equal).

## Use

```python
import transformers_groma  # registers Groma with the Auto classes
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("PATH_OR_REPO")
processor = AutoProcessor.from_pretrained("PATH_OR_REPO")
messages = [{{"role": "user", "content": [{{"type": "image"}}, {{"type": "text", "text": "Locate <p>the dog</p> in the image."}}]}}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
inputs = processor(images=image, text=prompt, return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=32, return_dict_in_generate=True)
result = processor.post_process_grounding(
    out.sequences[:, inputs["input_ids"].shape[1]:], out.region_boxes, target_sizes=[image.size[::-1]]
)
```

Answers refer to image regions with `<roi><rK></roi>`; `post_process_grounding` turns them into pixel boxes.
Users refer to a box with `<roi><refer_box></roi><refer_feat>` in the prompt and `boxes=[[[x1, y1, x2, y2]]]`
(pixels) in the processor call.

## Differences from the original implementation

- One merged vocabulary (base + 114 Groma tokens) instead of separate extra embedding / LM-head modules.
- Regions are kept in deterministic score order at inference (the original shuffles them at random).
- Behaviours the released weights depend on are kept behind `legacy_*` config flags (RoIAlign box format and
  scales, frozen decoder reference points, learned query content, DINOv2 position interpolation).

## Citation

```bibtex
@article{{ma2024groma,
  title={{Groma: Localized Visual Tokenization for Grounding Multimodal Large Language Models}},
  author={{Ma, Chuofan and Jiang, Yi and Wu, Jiannan and Yuan, Zehuan and Qi, Xiaojuan}},
  journal={{arXiv preprint arXiv:2404.13013}},
  year={{2024}}
}}
```
"""


def write_model_card(folder: Path, model: nn.Module, source: Path, num_original_tensors: int) -> None:
    """Write `README.md` (YAML metadata + usage) into `folder`."""
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        license="apache-2.0",
        tags=["groma", "grounding", "visual-grounding", "referring-expression-comprehension", "transformers-groma"],
        base_model=["lmsys/vicuna-7b-v1.5", "facebook/dinov2-large"],
    )
    content = CARD_TEMPLATE.format(
        card_data=card_data.to_yaml(),
        title=f"Groma ({type(model).__name__})",
        version=__version__,
        source=source.name,
        num_original_tensors=num_original_tensors,
    )
    ModelCard(content).save(folder / "README.md")
