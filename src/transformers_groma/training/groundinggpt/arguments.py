"""Arguments of `groma-train-groundinggpt`, read from the command line, a YAML/JSON file, or both (see
`training.arguments.parse_arguments`)."""

from dataclasses import dataclass, field

from ..arguments import GromaTrainingArguments, LoraArguments


@dataclass
class GroundingGPTTrainingArguments(GromaTrainingArguments):
    """[`GromaTrainingArguments`] whose batches mix the data sources by default, as the original, which shuffles the
    records of all its annotation files together."""

    group_by_source: bool = field(
        default=False,
        metadata={
            "help": "Build micro-batches from a single data source (annotation file) instead of mixing them: indices "
            "are shuffled per source and cut into chunks of per-device batch x gradient accumulation steps."
        },
    )


@dataclass
class GroundingGPTModelArguments(LoraArguments):
    """Which GroundingGPT the instruction stage starts from, and optionally LoRA on its LLM (`--lora_r`)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A converted GroundingGPT folder (`groma-convert`) or a previous run's output, with its processor."
        },
    )
    init_from_tiny: bool = field(
        default=False,
        metadata={"help": "Build a tiny random GroundingGPT and its processor in code (tests, offline examples)."},
    )
    attn_implementation: str = field(
        default="sdpa",
        metadata={"help": "Attention of the LLM.", "choices": ["eager", "sdpa", "flash_attention_2"]},
    )

    def __post_init__(self):
        if self.init_from_tiny == (self.model_name_or_path is not None):
            raise ValueError("Give exactly one model source: `--model_name_or_path` or `--init_from_tiny`.")


@dataclass
class GroundingGPTDataArguments:
    """The instruction data, in the original GroundingGPT format (spec §6.3).

    Every annotation file is a JSON list of records `{"image"?, "video"?, "sound"?, "conversations": [{"from":
    "human" | "gpt", "value"}, ...]}`; the media paths are relative to `image_folder`, `video_folder` and
    `sound_folder`, and the first human turn holds one `<image>` / `<video>` / `<sound>` placeholder per medium.
    """

    data_path: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated annotation files (JSON lists); each file is one data source of the mixture."
        },
    )
    image_folder: str = field(
        default="", metadata={"help": "Folder the `image` paths of the records are relative to."}
    )
    video_folder: str = field(
        default="", metadata={"help": "Folder the `video` paths of the records are relative to."}
    )
    sound_folder: str = field(
        default="", metadata={"help": "Folder the `sound` paths of the records are relative to."}
    )
    validation_data_path: str | None = field(
        default=None,
        metadata={"help": "Comma-separated annotation files for the eval loss (same format and folders)."},
    )
    model_max_length: int = field(
        default=2048,
        metadata={
            "help": "Most tokens per sample, media blocks included; longer conversations lose whole trailing "
            "exchanges."
        },
    )
    video_random_crop: bool = field(
        default=True,
        metadata={
            "help": "Video frames get the original's training crop (one random 50-100% area crop per video); false: "
            "the deterministic transform of inference."
        },
    )
    allow_short_audio: bool = field(
        default=True,
        metadata={"help": "Train on audio shorter than one 2 s clip, zero-padded as the original does; false: error."},
    )
    skip_bad_records: bool = field(
        default=False, metadata={"help": "Skip malformed records (with a count in the log) instead of stopping."}
    )

    def __post_init__(self):
        if not self.data_path:
            raise ValueError("`--data_path` (comma-separated annotation files) is required.")
