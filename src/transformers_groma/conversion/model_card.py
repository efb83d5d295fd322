"""Hub model card written next to a converted checkpoint."""

from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData
from transformers import PreTrainedModel

from ..modeling import GromaForRegionProposal
from ..version import __version__


CHAT_USAGE = """```python
import transformers_groma  # registers Groma with the Auto classes
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("PATH_OR_REPO")
processor = AutoProcessor.from_pretrained("PATH_OR_REPO")
question = {"type": "text", "text": "Locate <p>the dog</p> in the image."}
messages = [{"role": "user", "content": [{"type": "image"}, question]}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
inputs = processor(images=image, text=prompt, return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=32, return_dict_in_generate=True)
new_tokens = out.sequences[:, inputs["input_ids"].shape[1] :]
(result,) = processor.post_process_grounding(new_tokens, out.region_boxes, target_sizes=[image.size[::-1]])
```

Answers refer to image regions with `<roi><rK></roi>`; `post_process_grounding` turns them into pixel boxes.
Users refer to a box with `<roi><refer_box></roi><refer_feat>` in the prompt and `boxes=[[[x1, y1, x2, y2]]]`
(pixels) in the processor call."""

DETECTOR_USAGE = """The detection-pretrained DINOv2 + region proposer (stage 1): a class-agnostic detector, and the vision part a
Groma model is assembled from for stage 2 (`groma-train --vision_proposer_path`).

```python
from transformers import AutoImageProcessor
from transformers_groma import GromaForRegionProposal

model = GromaForRegionProposal.from_pretrained("PATH_OR_REPO")
image_processor = AutoImageProcessor.from_pretrained("PATH_OR_REPO")
outputs = model(**image_processor(images=image, return_tensors="pt"))
outputs.pred_boxes  # (1, num_queries, 4) normalized (center_x, center_y, width, height)
outputs.scores  # (1, num_queries) fused objectness
```"""

CHAT_DIFFERENCES = """- One merged vocabulary (base + 114 Groma tokens) instead of separate extra embedding / LM-head modules.
- Regions are kept in deterministic score order at inference (the original shuffles them at random).
- Behaviours the released weights depend on are kept behind `legacy_*` config flags (RoIAlign box format and
  scales, frozen decoder reference points, learned query content, DINOv2 position interpolation)."""

DETECTOR_DIFFERENCES = """- transformers' Deformable-DETR layers and DINOv2 instead of the original's copies.
- Behaviours the released weights depend on are kept behind `legacy_*` config flags (frozen decoder reference
  points, learned query content, DINOv2 position interpolation)."""

CARD_TEMPLATE = """---
{card_data}
---

# {title}

Groma ([arXiv 2404.13013](https://arxiv.org/abs/2404.13013)) converted to the native
transformers-groma format (transformers-groma {version}) from the original checkpoint
`{source}` ({num_original_tensors} tensors; all keys mapped, reloaded weights checked equal).

## Use

{usage}
## Differences from the original implementation

{differences}

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


def write_model_card(folder: Path, model: PreTrainedModel, source: Path, num_original_tensors: int) -> None:
    """Write `README.md` (YAML metadata + usage for the model's kind) into `folder`."""
    detector = isinstance(model, GromaForRegionProposal)
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="object-detection" if detector else "image-text-to-text",
        license="apache-2.0",
        tags=["groma", "grounding", "transformers-groma"]
        + (
            ["object-detection", "region-proposal"]
            if detector
            else ["visual-grounding", "referring-expression-comprehension"]
        ),
        base_model=["facebook/dinov2-large"] if detector else ["lmsys/vicuna-7b-v1.5", "facebook/dinov2-large"],
    )
    content = CARD_TEMPLATE.format(
        card_data=card_data.to_yaml(),
        title=f"Groma ({type(model).__name__})",
        version=__version__,
        source=source.name,
        num_original_tensors=num_original_tensors,
        usage=DETECTOR_USAGE if detector else CHAT_USAGE,
        differences=DETECTOR_DIFFERENCES if detector else CHAT_DIFFERENCES,
    )
    ModelCard(content).save(folder / "README.md")
