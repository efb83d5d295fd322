"""Arguments of `groma-train-detection` and `groma-train`, read from the command line, a YAML/JSON file, or both.

`groma-train stage3.yaml` reads every argument from the file; `groma-train stage3.yaml --output_dir runs/x` reads the
file and lets the command line override single values.
"""

import os
from dataclasses import dataclass, field, fields

from transformers import HfArgumentParser, TrainingArguments
from transformers.utils import logging

from .data_config import read_config_file


logger = logging.get_logger(__name__)

STAGES = ("align", "finetune", "custom")
LORA_TARGET_MODULES = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


@dataclass
class GromaTrainingArguments(TrainingArguments):
    """[`~transformers.TrainingArguments`] with Groma's additions."""

    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Always False for Groma: images and boxes are not forward() columns the Trainer knows."},
    )
    group_by_source: bool = field(
        default=True,
        metadata={
            "help": "Build micro-batches from a single data source (the original `group_by_data_source`): indices are "
            "shuffled per source and cut into chunks of per-device batch x gradient accumulation steps."
        },
    )
    lr_multiplier_patterns: list[str] = field(
        default_factory=list,
        metadata={"help": "Parameters whose name contains one of these strings train at `lr_multiplier` x the LR."},
    )
    lr_multiplier: float = field(default=0.1, metadata={"help": "LR factor of `lr_multiplier_patterns`."})
    padding_free: bool = field(
        default=False,
        metadata={
            "help": "Pack each expanded batch into one row without padding (vision-language stages). Pays off with "
            "attn_implementation=flash_attention_2 (varlen kernels) when sample lengths differ a lot."
        },
    )
    auto_resume: bool = field(
        default=True,
        metadata={
            "help": "Resume from the last `checkpoint-*` of `output_dir` when `resume_from_checkpoint` is unset."
        },
    )

    def __post_init__(self):
        if self.remove_unused_columns:
            logger.warning("Setting `remove_unused_columns=False`: Groma's collators need the image and box columns.")
            self.remove_unused_columns = False
        if self.use_cache:
            logger.warning("Setting `use_cache=False`: the LLM must not build a KV cache in training.")
            self.use_cache = False
        super().__post_init__()

    @property
    def effective_data_seed(self) -> int:
        """Seed of the data order, sub-sampling and instruction phrasings: `data_seed`, else `seed`."""
        return self.data_seed if self.data_seed is not None else self.seed


@dataclass
class GromaDetectionTrainingArguments(GromaTrainingArguments):
    """Training arguments of detection pretraining: deformable sampling offsets train at 0.1 x the LR."""

    lr_multiplier_patterns: list[str] = field(
        default_factory=lambda: ["sampling_offsets"],
        metadata={"help": "Parameters whose name contains one of these strings train at `lr_multiplier` x the LR."},
    )


@dataclass
class LoraArguments:
    """LoRA on the LLM (`--lora_r` > 0): adapters on the projections `lora_target_modules` matches, the modules
    connecting the vision side to the LLM train in full, everything else is frozen (QLoRA: load the base in 4-bit)."""

    lora_r: int = field(default=0, metadata={"help": "LoRA rank on the LLM projections; 0 disables LoRA."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: str = field(
        default=LORA_TARGET_MODULES, metadata={"help": "Regex of the LLM modules that get LoRA adapters."}
    )


@dataclass
class ModelArguments(LoraArguments):
    """Which model the vision-language stages start from, and what of it trains."""

    stage: str = field(
        default="finetune",
        metadata={
            "help": "align: stage 2 (bridge, region encoder and Groma token rows train; `default` template). "
            "finetune: stage 3 (+ the whole LLM; `llava` template). custom: finetune on your own data (as finetune).",
            "choices": list(STAGES),
        },
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A Groma folder (converted or trained here) with its processor."}
    )
    vision_proposer_path: str | None = field(
        default=None,
        metadata={"help": "Stage 2 from scratch: a detection-pretrained GromaForRegionProposal folder (stage 1)."},
    )
    llm_path: str | None = field(
        default=None,
        metadata={"help": "Stage 2 from scratch: a Llama/Vicuna folder; its tokenizer gets Groma's 114 tokens."},
    )
    init_from_tiny: bool = field(
        default=False, metadata={"help": "Build a tiny random Groma and tokenizer in code (tests, offline examples)."}
    )
    attn_implementation: str = field(
        default="sdpa",
        metadata={"help": "Attention of the LLM.", "choices": ["eager", "sdpa", "flash_attention_2"]},
    )
    freeze_llm: bool | None = field(
        default=None, metadata={"help": "Freeze the LLM (default: frozen for `align`, trained otherwise)."}
    )
    train_new_token_rows_only: bool | None = field(
        default=None,
        metadata={
            "help": "Train only the Groma-token rows of the input embeddings and LM head; the base vocabulary's rows "
            "get zero gradients (default: True for `align`). Needs weight_decay 0 to keep those rows unchanged."
        },
    )
    shuffle_regions: bool = field(
        default=True, metadata={"help": "Randomly permute the selected regions in training, as the original."}
    )
    legacy_region_encoder: bool = field(
        default=False,
        metadata={
            "help": "New models only (stage 2 from scratch, --init_from_tiny): keep the released model's RoIAlign "
            "box-format and spatial-scale quirks (spec Q1/Q2). The default trains a new region encoder with correct "
            "boxes (and --init_from_tiny turns the proposer's quirks Q3-Q5 off too)."
        },
    )
    merge_lora: bool = field(
        default=True,
        metadata={
            "help": "With LoRA, merge the adapters into the LLM when saving: the output folder is a full model for "
            "`from_pretrained` and `groma predict --model`. `false` saves the adapter folder instead (load it with "
            "`PeftModel.from_pretrained(base_model, output_dir)`)."
        },
    )

    def __post_init__(self):
        sources = [self.init_from_tiny, self.model_name_or_path is not None, self.llm_path is not None]
        if sum(sources) != 1 or (self.llm_path is None) != (self.vision_proposer_path is None):
            raise ValueError(
                "Give exactly one model source: `--model_name_or_path`, `--vision_proposer_path` with `--llm_path` "
                "(stage 2 from scratch), or `--init_from_tiny`."
            )


@dataclass
class DataArguments:
    """The vision-language training data."""

    data_config: str | None = field(
        default=None, metadata={"help": "Mixture file (YAML/JSON) listing the sources, see `data_config`."}
    )
    train_file: str | None = field(
        default=None, metadata={"help": "Shorthand for a one-source mixture: a custom JSONL file (see `sources`)."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "A custom JSONL file for the eval loss."})
    image_dir: str | None = field(
        default=None, metadata={"help": "Folder the images of `train_file`/`validation_file` are relative to."}
    )
    conversation_template: str | None = field(
        default=None,
        metadata={
            "help": "Template of sources that set none (default: `default` for align, `llava` otherwise).",
            "choices": ["default", "llava"],
        },
    )
    model_max_length: int = field(default=2048, metadata={"help": "Most tokens per sample before expansion."})
    skip_bad_records: bool = field(
        default=False, metadata={"help": "Skip malformed records (with a count in the log) instead of stopping."}
    )

    def __post_init__(self):
        if (self.data_config is None) == (self.train_file is None):
            raise ValueError("Give exactly one of `--data_config` (a mixture file) and `--train_file` (custom JSONL).")


@dataclass
class DetectionModelArguments:
    """Which region proposer detection pretraining starts from."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A GromaForRegionProposal folder to continue from."}
    )
    vision_model_name_or_path: str | None = field(
        default=None, metadata={"help": "A DINOv2 folder (e.g. facebook/dinov2-large) for a new proposer."}
    )
    init_from_tiny: bool = field(default=False, metadata={"help": "Build a tiny random proposer in code."})
    freeze_vision_tower: bool = field(default=True, metadata={"help": "Keep DINOv2 frozen (the paper does)."})
    legacy_quirks: bool = field(
        default=False,
        metadata={
            "help": "New proposers only (--init_from_tiny, --vision_model_name_or_path): keep the released model's "
            "quirks (spec Q1-Q5: RoIAlign boxes, frozen reference points, learned query content, position "
            "interpolation). Off by default: a model trained from scratch needs none of them."
        },
    )

    def __post_init__(self):
        sources = [
            self.init_from_tiny,
            self.model_name_or_path is not None,
            self.vision_model_name_or_path is not None,
        ]
        if sum(sources) != 1:
            raise ValueError(
                "Give exactly one of `--model_name_or_path`, `--vision_model_name_or_path` and `--init_from_tiny`."
            )


@dataclass
class DetectionDataArguments:
    """Detection pretraining data and augmentation."""

    data_config: str | None = field(default=None, metadata={"help": "Mixture file (YAML/JSON) of detection sources."})
    validation_annotation_file: str | None = field(
        default=None, metadata={"help": "COCO-format file for class-agnostic AP/AR at evaluation."}
    )
    validation_image_dir: str | None = field(default=None, metadata={"help": "Images of the validation file."})
    image_size: int | None = field(
        default=None, metadata={"help": "Side of the square model input (default 448; 112 with --init_from_tiny)."}
    )
    short_sides: list[int] = field(
        default_factory=lambda: [400, 500, 600], metadata={"help": "Shorter sides of the multi-scale resize."}
    )
    max_long_side: int = field(default=4200, metadata={"help": "Longest side after the multi-scale resize."})
    crop_size_range: list[int] = field(
        default_factory=lambda: [448, 896], metadata={"help": "Min and max side of the random crop (px)."}
    )
    flip_prob: float = field(default=0.5, metadata={"help": "Probability of a horizontal flip."})
    min_box_side: float = field(default=2.0, metadata={"help": "COCO-style sources drop boxes with a side <= this."})
    sa1b_box_area_range: list[float] = field(
        default_factory=lambda: [14.0**2, 400.0**2],
        metadata={"help": "SA-1B keeps boxes whose area (px^2 on the model input) is strictly inside this range."},
    )
    max_detections: int = field(default=100, metadata={"help": "Detections per image at evaluation."})
    skip_bad_records: bool = field(
        default=False, metadata={"help": "Skip malformed records (with a count in the log) instead of stopping."}
    )

    def __post_init__(self):
        if self.data_config is None:
            raise ValueError("`--data_config` (a mixture file of detection sources) is required.")
        for name in ("crop_size_range", "sa1b_box_area_range"):
            value = getattr(self, name)
            if len(value) != 2 or not 0 <= value[0] <= value[1]:
                raise ValueError(f"`{name}` must be two numbers 0 <= low <= high, got {value}.")


def parse_arguments(dataclass_types: tuple[type, ...], argv: list[str] | None = None) -> tuple:
    """Parse `argv` into instances of `dataclass_types`.

    `argv` may start with a YAML or JSON file (a mapping of argument names to values): with nothing after it the file
    is parsed with `HfArgumentParser.parse_yaml_file`/`parse_json_file`; command-line arguments after it override the
    file's values.

    Raises:
        ValueError: for keys of the file that are not arguments.
    """
    parser = HfArgumentParser(dataclass_types)
    argv = list(argv) if argv is not None else None
    if not argv or not argv[0].endswith((".yaml", ".yml", ".json")):
        return parser.parse_args_into_dataclasses(args=argv)
    path, overrides = os.path.abspath(argv[0]), argv[1:]
    if not overrides:
        if path.endswith(".json"):
            return parser.parse_json_file(path, allow_extra_keys=False)
        return parser.parse_yaml_file(path, allow_extra_keys=False)
    values = read_config_file(path)
    known = {item.name for dataclass_type in dataclass_types for item in fields(dataclass_type) if item.init}
    unknown = sorted(values.keys() - known)
    if unknown:
        raise ValueError(f"{path}: unknown arguments {unknown}.")
    parser.set_defaults(**values)
    return parser.parse_args_into_dataclasses(args=overrides)
