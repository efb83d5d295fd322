"""Building the model and processor of each training stage, and choosing what trains.

| Stage | Starts from | Trains | Frozen |
|---|---|---|---|
| detection (1) | DINOv2 (`--vision_model_name_or_path`) | region proposer | DINOv2 |
| align (2) | stage-1 proposer + Vicuna (`--vision_proposer_path`, `--llm_path`) | bridge, region encoder, Groma-token rows of the embeddings and LM head | DINOv2, proposer, LLM, base-vocabulary rows |
| finetune (3), custom | a Groma folder (`--model_name_or_path`) | bridge, region encoder, whole LLM | DINOv2, proposer |

Stage 2 keeps the base vocabulary's rows fixed, as the original did with its separate `new_input_embs` /
`extra_lm_head` modules: the merged embedding and LM head train, but a gradient hook zeroes the gradient of every row
below the first Groma token (`train_new_token_rows_only`). With weight decay 0 (the paper's setting) AdamW then
leaves those rows bit-identical.
"""

import os
from collections.abc import Sequence

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, PreTrainedConfig, PreTrainedModel
from transformers.utils import logging

from .. import GromaConfig, GromaForConditionalGeneration, GromaForRegionProposal
from ..processing import CHAT_TEMPLATE, GromaImageProcessor, GromaProcessor, load_original_tokenizer
from ..tiny import TINY_IMAGE_SIZE, tiny_groma_config, tiny_groma_processor
from ..tokens import (
    GROUND_BOX_TOKEN,
    IMAGE_TOKEN,
    PAD_TOKEN,
    REFER_BOX_TOKEN,
    REFER_FEAT_TOKEN,
    REGION_INDEX_TOKENS,
    REGION_TOKEN,
)
from .arguments import DetectionModelArguments, LoraArguments, ModelArguments


logger = logging.get_logger(__name__)

GROMA_INPUT_SIZE = 448
# Config fields holding the id of a Groma token, and the token.
TOKEN_ID_FIELDS = {
    "pad_token_id": PAD_TOKEN,
    "image_token_id": IMAGE_TOKEN,
    "region_token_id": REGION_TOKEN,
    "refer_box_token_id": REFER_BOX_TOKEN,
    "ground_box_token_id": GROUND_BOX_TOKEN,
    "refer_feat_token_id": REFER_FEAT_TOKEN,
    "region_index_token_id": REGION_INDEX_TOKENS[0],
}
# Modules trained in full next to LoRA adapters (saved with the adapter).
LORA_MODULES_TO_SAVE = ["multi_modal_projector", "region_encoder"]


def set_legacy_quirks(config: GromaConfig, region_encoder: bool = False, proposer: bool = False) -> GromaConfig:
    """Switch the released model's quirks (spec §8.1) on or off in a config of a model trained from scratch.

    Args:
        config: The config, changed in place.
        region_encoder: Keep the RoIAlign box-format and spatial-scale quirks (Q1/Q2).
        proposer: Keep the proposer's frozen reference points and learned query content (Q3/Q4) and DINOv2's
            legacy position interpolation (Q5).

    Returns:
        `config`.
    """
    config.legacy_roi_box_format = config.legacy_roi_spatial_scale = region_encoder
    config.legacy_position_interpolation = proposer
    config.proposer_config.legacy_frozen_reference_points = proposer
    config.proposer_config.legacy_learned_query_content = proposer
    return config


def build_detection_model(args: DetectionModelArguments) -> tuple[GromaForRegionProposal, int]:
    """The region proposer to pretrain and its default input size (448, or 112 for the tiny model).

    A new proposer (`init_from_tiny`, `vision_model_name_or_path`) has every legacy quirk off unless
    `args.legacy_quirks`; a loaded one keeps its config.
    """
    if args.init_from_tiny:
        config = set_legacy_quirks(tiny_groma_config(), args.legacy_quirks, args.legacy_quirks)
        return GromaForRegionProposal(config), TINY_IMAGE_SIZE
    if args.model_name_or_path:
        return GromaForRegionProposal.from_pretrained(args.model_name_or_path, dtype=torch.float32), GROMA_INPUT_SIZE
    vision_tower = AutoModel.from_pretrained(args.vision_model_name_or_path, dtype=torch.float32)
    config = GromaConfig(vision_config=vision_tower.config.to_dict())
    model = GromaForRegionProposal(set_legacy_quirks(config, args.legacy_quirks, args.legacy_quirks))
    model.vision_tower.load_state_dict(vision_tower.state_dict())
    return model, GROMA_INPUT_SIZE


def freeze_for_detection(model: GromaForRegionProposal, freeze_vision_tower: bool) -> None:
    """Stage 1: the region proposer trains; DINOv2 is frozen unless `freeze_vision_tower` is False."""
    model.vision_tower.requires_grad_(not freeze_vision_tower)


def build_vl_model(args: ModelArguments, max_length: int) -> tuple[GromaForConditionalGeneration, GromaProcessor]:
    """The model and processor a vision-language stage starts from, ready for training.

    Sets the LLM's attention implementation, region shuffling and the tokenizer's `model_max_length`, and checks that
    the tokenizer's Groma token ids are the model's. (The Trainer sets `config.use_cache` from
    `GromaTrainingArguments.use_cache`, always False, and `GromaModel` passes it to the LLM.)
    """
    if args.init_from_tiny:
        config = set_legacy_quirks(tiny_groma_config(), region_encoder=args.legacy_region_encoder)
        model, processor = GromaForConditionalGeneration(config), tiny_groma_processor()
    elif args.model_name_or_path:
        processor = GromaProcessor.from_pretrained(args.model_name_or_path)
        model = GromaForConditionalGeneration.from_pretrained(args.model_name_or_path, dtype=torch.float32)
    else:
        model, processor = assemble_stage2_model(args.vision_proposer_path, args.llm_path, args.legacy_region_encoder)
    model.set_attn_implementation({"text_config": args.attn_implementation})
    model.config.shuffle_regions = args.shuffle_regions
    processor.tokenizer.model_max_length = max_length
    check_token_ids(model.config, processor.tokenizer)
    return model, processor


def check_token_ids(config: PreTrainedConfig, tokenizer, token_id_fields: dict[str, str] = TOKEN_ID_FIELDS) -> None:
    """Raise a ValueError if the tokenizer's ids of the model's tokens differ from the model config's.

    Args:
        config: The model config.
        tokenizer: The tokenizer.
        token_id_fields: Config fields holding a token id, and the token (default: Groma's).
    """
    for field_name, token in token_id_fields.items():
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id != getattr(config, field_name):
            raise ValueError(
                f"The tokenizer maps {token} to {token_id} but the model's config has {field_name}="
                f"{getattr(config, field_name)}: the model and tokenizer do not belong together."
            )


def assemble_stage2_model(
    vision_proposer_path: str, llm_path: str, legacy_region_encoder: bool = False
) -> tuple[GromaForConditionalGeneration, GromaProcessor]:
    """A new Groma for stage 2: a detection-pretrained proposer, a Llama/Vicuna LLM and new bridge/region encoder.

    The LLM's tokenizer gets Groma's 114 tokens (`load_original_tokenizer`); the new embedding rows start at the mean
    of the base rows and the new LM-head rows with `nn.Linear`'s default initialization, as in the original.

    Args:
        vision_proposer_path: A `GromaForRegionProposal` folder (stage-1 output; its image processor is reused).
        llm_path: A Llama/Vicuna folder with its SentencePiece tokenizer.
        legacy_region_encoder: Keep the released model's RoIAlign quirks (spec Q1/Q2) instead of correct boxes.
    """
    if not os.path.isdir(llm_path):
        raise ValueError(
            f"`--llm_path` must be a local folder (got {llm_path!r}): its tokenizer_config.json decides how the "
            "tokenizer is rebuilt. Download it first, e.g. `hf download lmsys/vicuna-7b-v1.5 --local-dir vicuna`."
        )
    tokenizer = load_original_tokenizer(llm_path)
    proposer = GromaForRegionProposal.from_pretrained(vision_proposer_path, dtype=torch.float32)
    llm = AutoModelForCausalLM.from_pretrained(llm_path, dtype=torch.float32)
    base_vocab_size = llm.config.vocab_size
    llm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    init_new_token_rows(llm, base_vocab_size)

    config = proposer.config
    config.text_config = llm.config
    config.text_config.pad_token_id = tokenizer.pad_token_id
    for field_name, token in TOKEN_ID_FIELDS.items():
        setattr(config, field_name, tokenizer.convert_tokens_to_ids(token))
    # The proposer keeps its own quirks (Q3-Q5): it comes trained from stage 1.
    config.legacy_roi_box_format = config.legacy_roi_spatial_scale = legacy_region_encoder
    model = GromaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(proposer.vision_tower.state_dict())
    model.model.region_proposer.load_state_dict(proposer.region_proposer.state_dict())
    model.model.language_model.load_state_dict(llm.model.state_dict())
    model.lm_head.load_state_dict(llm.lm_head.state_dict())
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    image_processor = GromaImageProcessor.from_pretrained(vision_proposer_path)
    processor = GromaProcessor(
        image_processor, tokenizer, chat_template=CHAT_TEMPLATE, max_region_num=config.max_region_num
    )
    return model, processor


@torch.no_grad()
def init_new_token_rows(llm: PreTrainedModel, base_vocab_size: int) -> None:
    """Initialize the rows of the Groma tokens as the original: input rows = mean base row, LM-head rows as a fresh
    `nn.Linear`."""
    embeddings = llm.get_input_embeddings().weight
    embeddings[base_vocab_size:] = embeddings[:base_vocab_size].mean(0)
    lm_head = llm.get_output_embeddings().weight
    fresh = nn.Linear(lm_head.shape[1], lm_head.shape[0] - base_vocab_size, bias=False)
    lm_head[base_vocab_size:] = fresh.weight.to(lm_head.dtype)


def configure_vl_trainable(model: GromaForConditionalGeneration, freeze_llm: bool, new_token_rows_only: bool) -> None:
    """Set `requires_grad` for a vision-language stage (see the module docstring).

    Args:
        model: The model.
        freeze_llm: Keep the LLM's transformer layers frozen (stage 2).
        new_token_rows_only: Zero the gradient of the base-vocabulary rows of the input embeddings and LM head.
    """
    model.requires_grad_(False)
    model.model.multi_modal_projector.requires_grad_(True)
    model.model.region_encoder.requires_grad_(True)
    model.model.language_model.requires_grad_(not freeze_llm)
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        module.requires_grad_(True)
        if new_token_rows_only:
            module.weight.register_hook(_zero_rows_below(model.config.pad_token_id))  # [PAD] is the first Groma token


def _zero_rows_below(first_trained_row: int):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[:first_trained_row] = 0
        return grad

    return hook


def apply_lora(
    model: PreTrainedModel, args: LoraArguments, modules_to_save: Sequence[str] = LORA_MODULES_TO_SAVE
) -> PeftModel:
    """Wrap the model with LoRA adapters on the LLM projections matched by `args.lora_target_modules`.

    `modules_to_save` (by default Groma's bridge and region encoder) train in full and are saved with the adapter;
    everything else (embeddings, LM head, vision side) is frozen. `groma-train` merges the adapters into the saved
    model unless `--merge_lora false` (then load the adapter folder with
    `PeftModel.from_pretrained(base_model, output_dir)`).
    """
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.lora_target_modules,
        modules_to_save=list(modules_to_save),
    )
    return get_peft_model(model, config)


def log_trainable_parameters(model: nn.Module) -> None:
    """Log the number of trainable parameters per top-level module."""
    counts = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            module = ".".join(name.split(".")[:2] if name.startswith("model.") else name.split(".")[:1])
            counts[module] = counts.get(module, 0) + parameter.numel()
    total = sum(parameter.numel() for parameter in model.parameters())
    lines = "\n".join(f"  {module}: {count:,}" for module, count in counts.items())
    logger.info(f"Trainable parameters: {sum(counts.values()):,} of {total:,}\n{lines}")
