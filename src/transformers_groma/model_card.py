"""Hub model cards (`README.md`) for converted, trained and LoRA folders of Groma and GroundingGPT.

A card says where the weights come from (`base_model`: the checkpoint converted or trained from, with its Hub
organisation), under which licence (the chat models derive from Vicuna-7B v1.5, hence the Llama 2 licence), what
they were trained on, the `legacy_*` behaviours in effect, evaluation results when there are some (`model-index`),
how to load it (with `trust_remote_code=True`: the folder carries its code) and how to cite it.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .version import __version__


Relation = Literal["converted", "trained", "adapter"]

# Released checkpoints -> the Hub datasets their training used (the ones published on the Hub).
RELEASES: dict[str, tuple[str, ...]] = {
    "FoundationVision/groma-7b-finetune": (
        "FoundationVision/groma_instruct",
        "FoundationVision/groma_data",
        "liuhaotian/LLaVA-Instruct-150K",
        "Lin-Chen/ShareGPT4V",
    ),
    "FoundationVision/groma-7b-pretrain": ("FoundationVision/groma_data", "Lin-Chen/ShareGPT4V"),
    "FoundationVision/groma-det-pretrain": ("FoundationVision/groma_data",),
    "zwli/GroundingGPT": ("zwli/GroundingGPT",),
}

GROMA_CITATION = """@article{ma2024groma,
  title={Groma: Localized Visual Tokenization for Grounding Multimodal Large Language Models},
  author={Ma, Chuofan and Jiang, Yi and Wu, Jiannan and Yuan, Zehuan and Qi, Xiaojuan},
  journal={arXiv preprint arXiv:2404.13013},
  year={2024}
}"""

GROUNDINGGPT_CITATION = """@inproceedings{li2024groundinggpt,
  title={GroundingGPT: Language Enhanced Multi-modal Grounding Model},
  author={Li, Zhaowei and others},
  booktitle={Proceedings of the 62nd Annual Meeting of the Association for Computational Linguistics},
  year={2024}
}"""

GROMA_CHAT_USAGE = """```python
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

repo = "{repo}"
model = AutoModelForImageTextToText.from_pretrained(repo, dtype="auto", device_map="auto", trust_remote_code=True)
processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
image = Image.open("dog.jpg").convert("RGB")
question = {{"type": "text", "text": "Locate <p>the dog</p> in the image."}}
messages = [{{"role": "user", "content": [{{"type": "image"}}, question]}}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
inputs = processor(images=image, text=prompt, return_tensors="pt").to(model.device)
out = model.generate(**inputs, max_new_tokens=32, return_dict_in_generate=True)
new_tokens = out.sequences[:, inputs["input_ids"].shape[1] :]
(result,) = processor.post_process_grounding(new_tokens, out.region_boxes, target_sizes=[image.size[::-1]])
print(result["text"], result["entities"])  # entities: phrase, boxes as pixel [x1, y1, x2, y2]
```

Answers refer to image regions with `<roi><rK></roi>`; `post_process_grounding` turns them into pixel boxes. To refer
to a box of your own, add `{{"type": "box"}}` to the message content and pass `boxes=[[[x1, y1, x2, y2]]]` (pixels)
to the processor."""

GROMA_DETECTOR_USAGE = """A class-agnostic detector: DINOv2 and the region proposer of Groma's first stage, from which a Groma chat model
is assembled for its second stage.

```python
from transformers import pipeline

detector = pipeline("object-detection", model="{repo}", trust_remote_code=True)
detections = detector("dog.jpg", threshold=0.3)
print(detections)  # [{{"score", "label", "box": {{"xmin", "ymin", "xmax", "ymax"}}}}], pixels, best first
```"""

GROUNDINGGPT_USAGE = """```python
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

repo = "{repo}"
model = AutoModelForImageTextToText.from_pretrained(repo, dtype="auto", device_map="auto", trust_remote_code=True)
processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
image = Image.open("dog.jpg").convert("RGB")
question = "Please provide the bounding box coordinate of the region this sentence describes: the dog."
messages = [{{"role": "user", "content": [{{"type": "image"}}, {{"type": "text", "text": question}}]}}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
inputs = processor(text=prompt, images=image, return_tensors="pt").to(model.device)
out = model.generate(**inputs, max_new_tokens=64, stop_strings="###", tokenizer=processor.tokenizer)
new_tokens = out[:, inputs["input_ids"].shape[1] :]
(result,) = processor.post_process_grounding(new_tokens, image_sizes=inputs["image_sizes"].tolist())
print(result["text"], [box["box"] for box in result["boxes"]])  # boxes as pixel [x1, y1, x2, y2]
```

The processor also takes `videos=` (time spans `{{t1, t2}}` in the answers) and `audio=`."""

LOW_MEMORY = """**Less memory.** Load in 4-bit with bitsandbytes (the vision encoders stay unquantized):
`from_pretrained(repo, quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16),
trust_remote_code=True)`. `device_map="auto"` also offloads to the CPU and disk (`offload_folder=...`)."""

INSTALL = """The folder carries its modelling code: `trust_remote_code=True` loads it with only `transformers` (>= 5.23),
`torch` and `torchvision` installed. With the `transformers-groma` package installed, `import transformers_groma`
registers the classes instead (no `trust_remote_code` needed), and adds the `groma` command line, training scripts
and `pipeline("grounded-image-text-to-text")`."""


@dataclass(frozen=True)
class _Family:
    name: str
    paper: str
    license: str
    license_note: str
    pipeline_tag: str
    tags: tuple[str, ...]
    usage: str
    citation: str


GROMA_LICENSE_NOTE = (
    "The weights derive from Vicuna-7B v1.5, a finetune of Llama 2: they follow the Llama 2 Community License (and "
    "the terms of the Groma release). The code is Apache-2.0."
)

_FAMILIES = {
    "groma": _Family(
        name="Groma",
        paper="[arXiv 2404.13013](https://arxiv.org/abs/2404.13013)",
        license="llama2",
        license_note=GROMA_LICENSE_NOTE,
        pipeline_tag="image-text-to-text",
        tags=("groma", "visual-grounding", "referring-expression-comprehension", "region-captioning"),
        usage=GROMA_CHAT_USAGE,
        citation=GROMA_CITATION,
    ),
    "groma_detector": _Family(
        name="Groma region proposer",
        paper="[arXiv 2404.13013](https://arxiv.org/abs/2404.13013)",
        license="apache-2.0",
        license_note="DINOv2 and the Groma proposer are released under Apache-2.0, like the code.",
        pipeline_tag="object-detection",
        tags=("groma", "object-detection", "region-proposal"),
        usage=GROMA_DETECTOR_USAGE,
        citation=GROMA_CITATION,
    ),
    "groundinggpt": _Family(
        name="GroundingGPT",
        paper="[arXiv 2401.06071](https://arxiv.org/abs/2401.06071)",
        license="llama2",
        license_note=GROMA_LICENSE_NOTE.replace("Groma release", "GroundingGPT release"),
        pipeline_tag="image-text-to-text",
        tags=("groundinggpt", "visual-grounding", "video-temporal-grounding", "audio"),
        usage=GROUNDINGGPT_USAGE,
        citation=GROUNDINGGPT_CITATION,
    ),
}


def hub_id_of(source: str | Path | None) -> str | None:
    """The Hub id (`org/name`) of a checkpoint given as a Hub id, a Hub cache snapshot folder or a local folder
    named like a released checkpoint (`groma-7b-finetune` -> `FoundationVision/groma-7b-finetune`); else None."""
    if source is None:
        return None
    text = str(source)
    cached = re.search(r"models--([\w.-]+?)--([\w.-]+)", text)
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}"
    path = Path(text)
    if path.exists():
        names = {release.split("/")[1].lower(): release for release in RELEASES}
        return names.get(path.resolve().name.lower())
    return text if re.fullmatch(r"[\w.-]+/[\w.-]+", text) else None


def _family_key(config) -> str:
    if config.model_type == "groundinggpt":
        return "groundinggpt"
    if config.model_type != "groma":
        raise ValueError(f"Model cards are written for Groma and GroundingGPT configs, got {config.model_type!r}.")
    architectures = config.architectures or []
    return "groma_detector" if "GromaForRegionProposal" in architectures else "groma"


def _legacy_flags(config) -> dict[str, bool]:
    """Every `legacy_*` config field (the proposer's prefixed with `proposer_config.`) and its value."""
    flags = {key: value for key, value in config.to_dict().items() if key.startswith("legacy_")}
    proposer = getattr(config, "proposer_config", None)
    if proposer is not None:
        flags |= {
            f"proposer_config.{key}": getattr(proposer, key) for key in dir(proposer) if key.startswith("legacy_")
        }
    return dict(sorted(flags.items()))


def _provenance(relation: Relation, source: str | None, base_model: str | None, details: str) -> str:
    named = f"[`{base_model}`](https://huggingface.co/{base_model})" if base_model else f"`{source}`" if source else ""
    if relation == "converted":
        origin = (
            f"converted from the original checkpoint {named}" if named else "converted from an original checkpoint"
        )
    elif relation == "trained":
        origin = f"trained from {named}" if named else "trained with transformers-groma"
    else:
        origin = f"a LoRA adapter for {named}" if named else "a LoRA adapter"
    return f"This model is {origin} (transformers-groma {__version__}).{' ' + details if details else ''}"


def build_model_card(
    config,
    relation: Relation,
    source: str | Path | None = None,
    base_model: str | None = None,
    datasets: Iterable[str] | None = None,
    eval_results: Sequence[EvalResult | dict] = (),
    repo_id: str | None = None,
    details: str = "",
) -> ModelCard:
    """A model card for a folder holding a model with `config`.

    Args:
        config: The Groma or GroundingGPT config of the saved model (a detector when its `architectures` say so).
        relation: `"converted"` (from an original checkpoint), `"trained"` or `"adapter"` (LoRA weights only).
        source: Where the weights come from, as given (a Hub id or a folder); `base_model` is read off it (see
            [`hub_id_of`]) unless given.
        base_model: The Hub id of the checkpoint converted or trained from.
        datasets: Hub ids of the training data; defaults to the released checkpoint's data for conversions.
        eval_results: Evaluation results for the `model-index` (`huggingface_hub.EvalResult` or its keyword
            arguments as a dict, e.g. `{"task_type": "object-detection", "dataset_type": "lmms-lab/RefCOCO",
            "dataset_name": "RefCOCO val", "metric_type": "accuracy", "metric_value": 0.89}`).
        repo_id: The name the usage snippet loads (defaults to the base model's name or `"PATH_OR_REPO"`).
        details: One more sentence about the provenance (e.g. the number of converted tensors).
    """
    family = _FAMILIES[_family_key(config)]
    base_model = base_model or hub_id_of(source)
    if datasets is None:
        datasets = RELEASES.get(base_model, ()) if relation == "converted" else ()
    results = [result if isinstance(result, EvalResult) else EvalResult(**result) for result in eval_results]
    name = repo_id or "PATH_OR_REPO"
    title = f"{family.name} ({name.rsplit('/', 1)[-1]})" if repo_id else family.name
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=family.pipeline_tag,
        license=family.license,
        base_model=base_model,
        base_model_relation="adapter" if relation == "adapter" and base_model else None,
        datasets=list(datasets) or None,
        tags=["transformers-groma", "custom_code", *family.tags, *(["lora", "peft"] if relation == "adapter" else [])],
        model_name=name if results else None,
        eval_results=results or None,
    )
    source_name = None if source is None else Path(str(source)).name
    flags = _legacy_flags(config)
    flag_rows = "\n".join(f"| `{flag}` | {value} |" for flag, value in flags.items())
    sections = [
        f"# {title}",
        f"{family.name} ({family.paper}) in the native transformers format of transformers-groma. "
        + _provenance(relation, source_name, base_model, details),
        "## Use",
        INSTALL,
        _adapter_usage(name, base_model) if relation == "adapter" else family.usage.format(repo=name),
        LOW_MEMORY if family.pipeline_tag == "image-text-to-text" else "",
        "## Licence",
        family.license_note,
    ]
    if flags:
        sections += [
            "## Behaviours in effect",
            "Quirks of the original implementation that the released weights depend on are kept behind `legacy_*` "
            "config flags (set them all to `false` for models trained from scratch):",
            "| flag | value |\n|---|---|\n" + flag_rows,
        ]
    if results:
        rows = "\n".join(
            f"| {result.dataset_name} | {result.metric_name or result.metric_type} | {result.metric_value} |"
            for result in results
        )
        sections += ["## Evaluation", "| dataset | metric | value |\n|---|---|---|\n" + rows]
    sections += ["## Citation", f"```bibtex\n{family.citation}\n```"]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(section for section in sections if section) + "\n"
    return ModelCard(content)


def _adapter_usage(repo: str, base_model: str | None) -> str:
    return f"""LoRA weights (with the modules trained in full) for the base model:

```python
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor

base = AutoModelForImageTextToText.from_pretrained("{base_model or "BASE_MODEL"}", dtype="auto", trust_remote_code=True)
model = PeftModel.from_pretrained(base, "{repo}").merge_and_unload()
processor = AutoProcessor.from_pretrained("{repo}", trust_remote_code=True)
```"""


def write_model_card(folder: str | Path, config, relation: Relation, **kwargs) -> Path:
    """Write [`build_model_card`]`(config, relation, **kwargs)` as `folder/README.md`; returns its path."""
    path = Path(folder) / "README.md"
    build_model_card(config, relation, **kwargs).save(path)
    return path


__all__ = ["RELEASES", "build_model_card", "hub_id_of", "write_model_card"]
