"""Convert a released Groma checkpoint (FoundationVision/groma-7b-finetune, -pretrain, groma-det-pretrain) into a
native transformers_groma folder.

    groma-convert --input_dir ORIGINAL --output_dir NATIVE [--dtype bfloat16]

The output loads with `AutoModelForImageTextToText.from_pretrained(NATIVE)` (or `GromaForRegionProposal` for the
detection-pretraining checkpoint) and `AutoProcessor.from_pretrained(NATIVE)`. Every original key must map to a
native one and every native weight must be filled; otherwise nothing is written. The folder is assembled next to
`--output_dir` and moved into place only after the reloaded weights were checked against the original tensors.
"""

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig

from ..configuration_groma import GromaConfig
from ..hub import push_folder_to_hub
from ..model_card import write_model_card
from ..modeling import GromaForConditionalGeneration, GromaForRegionProposal
from ..processing import CHAT_TEMPLATE, GromaImageProcessor, GromaProcessor, load_original_tokenizer
from .checkpoint_io import (
    DTYPES,
    cast_weights,
    check_output_options,
    load_original_state_dict,
    read_original_config,
    resolve_input_dir,
    staged_output,
    verify_saved_weights,
)
from .config_conversion import convert_config, detect_checkpoint_kind
from .groundinggpt import convert_groundinggpt_checkpoint, is_groundinggpt_checkpoint
from .key_mapping import convert_state_dict


def infer_region_sizes(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Region-encoder widths the original hard-codes, read off the weight shapes (absent in detection checkpoints)."""
    if "region_encoder.roi_align.flatten_linear.weight" not in state_dict:
        return {}
    return {
        "region_hidden_size": state_dict["region_encoder.roi_align.flatten_linear.weight"].shape[0],
        "region_position_hidden_size": state_dict["region_encoder.roi_align.pos_embedd.0.weight"].shape[0],
    }


def build_native_model(
    original_config: dict[str, Any], original_state_dict: dict[str, torch.Tensor], overrides: dict[str, Any]
) -> GromaForConditionalGeneration | GromaForRegionProposal:
    """Instantiate the native model on the meta device and load the renamed weights into it (strict)."""
    kind = detect_checkpoint_kind(original_config)
    config = convert_config(original_config, {**infer_region_sizes(original_state_dict), **overrides})
    model_class = GromaForConditionalGeneration if kind == "groma" else GromaForRegionProposal
    state_dict = convert_state_dict(original_state_dict, prefix="model." if kind == "groma" else "")
    with torch.device("meta"):
        model = model_class(config)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise KeyError(
            f"Converted weights do not fit {model_class.__name__}: missing {missing[:20]}, unexpected {unexpected[:20]}"
        )
    wrong_shapes = [k for k, v in state_dict.items() if v.shape != expected[k].shape]
    if wrong_shapes:
        details = [f"{k}: {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong_shapes[:10]]
        raise ValueError(f"Shape mismatch for {len(wrong_shapes)} weight(s): {details}")
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.tie_weights()
    return model.eval()


def build_processor(input_dir: Path, config: GromaConfig, image_size: int, legacy: bool | None) -> GromaProcessor:
    """Image processor + the original tokenizer with Groma's tokens + the original chat template."""
    tokenizer = load_original_tokenizer(input_dir, legacy=legacy)
    for name, token in (("image_token_id", "<image>"), ("region_index_token_id", "<r0>"), ("pad_token_id", "[PAD]")):
        if tokenizer.convert_tokens_to_ids(token) != getattr(config, name):
            raise ValueError(
                f"The tokenizer in {input_dir} maps {token} to {tokenizer.convert_tokens_to_ids(token)}, but the "
                f"checkpoint's vocabulary puts it at {getattr(config, name)}."
            )
    image_processor = GromaImageProcessor(size={"height": image_size, "width": image_size})
    return GromaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        max_region_num=config.max_region_num,
    )


def build_generation_config(input_dir: Path, config: GromaConfig) -> GenerationConfig:
    """The original generation config with greedy decoding (every original evaluation script uses greedy)."""
    original = {}
    if (input_dir / "generation_config.json").is_file():
        original = json.loads((input_dir / "generation_config.json").read_text())
    return GenerationConfig(
        bos_token_id=original.get("bos_token_id", config.text_config.bos_token_id),
        eos_token_id=original.get("eos_token_id", config.text_config.eos_token_id),
        pad_token_id=config.pad_token_id,
        do_sample=False,
        max_new_tokens=1024,
    )


def convert_checkpoint(
    input_dir: str | Path,
    output_dir: str | Path,
    dtype: str = "float32",
    image_size: int = 448,
    overrides: dict[str, Any] | None = None,
    legacy_tokenizer: bool | None = None,
    max_shard_size: str = "5GB",
    overwrite: bool = False,
    vision_tower: str | Path | None = None,
    repo_id: str | None = None,
    eval_results: Sequence[dict] = (),
    push_to_hub: bool = False,
) -> Path:
    """Convert `input_dir` (an original checkpoint folder) into `output_dir`; see the module docstring.

    A GroundingGPT checkpoint (`model_type` "LEGO") is handed to
    [`~transformers_groma.conversion.groundinggpt.convert_groundinggpt_checkpoint`] with `vision_tower` (its CLIP
    folder), `dtype`, `overrides`, `max_shard_size` and `overwrite`.

    Args:
        dtype: dtype of the written weights ("float32", "bfloat16" or "float16"). With a 16-bit dtype the vision
            path stays float32 unless `overrides` sets `keep_vision_path_fp32` to False (see [`GromaPreTrainedModel.cast_to`]).
        image_size: side of the square images the processor resizes to (448 for the released models).
        overrides: native config fields the original hard-codes in code (e.g. `{"region_fuse_groups": 8}`).
        legacy_tokenizer: overrides the `legacy` flag read from the original tokenizer_config.json.
        repo_id: the Hub repository the folder is meant for: the model card's usage snippet loads it (by default
            the output folder's name).
        eval_results: evaluation results for the model card's `model-index` (`huggingface_hub.EvalResult` keyword
            arguments, e.g. from `groma-convert --eval_results results.json`).
        push_to_hub: upload the finished folder to `repo_id` with [`~transformers_groma.hub.push_folder_to_hub`].
    """
    if push_to_hub and not repo_id:
        raise ValueError("`push_to_hub` needs the `repo_id` to upload to.")
    source = str(input_dir)
    input_dir, output_dir = resolve_input_dir(input_dir), Path(output_dir)
    card = {"source": source, "repo_id": repo_id or output_dir.name, "eval_results": eval_results}
    if is_groundinggpt_checkpoint(read_original_config(input_dir)):
        convert_groundinggpt_checkpoint(
            input_dir, output_dir, vision_tower, dtype, overrides, max_shard_size, overwrite, card_kwargs=card
        )
    else:
        _convert_groma_checkpoint(
            input_dir,
            output_dir,
            dtype,
            image_size,
            overrides,
            legacy_tokenizer,
            max_shard_size,
            overwrite,
            vision_tower,
            card,
        )
    if push_to_hub:
        commit = push_folder_to_hub(output_dir, repo_id)
        print(f"Uploaded {output_dir} to {commit.commit_url}.")
    return output_dir


def _convert_groma_checkpoint(
    input_dir: Path,
    output_dir: Path,
    dtype: str,
    image_size: int,
    overrides: dict[str, Any] | None,
    legacy_tokenizer: bool | None,
    max_shard_size: str,
    overwrite: bool,
    vision_tower: str | Path | None,
    card: dict[str, Any],
) -> None:
    """The Groma and Groma-detector half of [`convert_checkpoint`]; `card` goes to `write_model_card`."""
    if vision_tower is not None:
        raise ValueError("--vision_tower is only used for GroundingGPT checkpoints (model_type 'LEGO').")
    check_output_options(input_dir, output_dir, overwrite, dtype)
    original_config = read_original_config(input_dir)
    kind = detect_checkpoint_kind(original_config)
    original_state_dict = load_original_state_dict(input_dir)
    model = cast_weights(build_native_model(original_config, original_state_dict, overrides or {}), dtype)
    if kind == "groma":
        processor = build_processor(input_dir, model.config, image_size, legacy_tokenizer)
    else:  # the detector takes images only
        processor = GromaImageProcessor(size={"height": image_size, "width": image_size})

    with staged_output(output_dir) as staging:
        model.save_pretrained(staging, max_shard_size=max_shard_size, save_original_format=False)
        processor.save_pretrained(staging)
        if kind == "groma":
            build_generation_config(input_dir, model.config).save_pretrained(staging)
        num_tensors = verify_saved_weights(staging, model)
        details = (
            f"All {len(original_state_dict)} original tensors were mapped and the reloaded weights checked equal."
        )
        write_model_card(staging, model.config, "converted", details=details, **card)
    print(
        f"Converted {input_dir} ({kind}): {len(original_state_dict)} original tensors -> {num_tensors} native "
        f"tensors, all keys mapped, reloaded weights identical. Saved {type(model).__name__} to {output_dir}."
    )


def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--override takes KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (`groma-convert`)."""
    parser = argparse.ArgumentParser(prog="groma-convert", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--input_dir", required=True, help="Folder of an original Groma, Groma detection or GroundingGPT checkpoint."
    )
    parser.add_argument("--output_dir", required=True, help="Folder to write the native checkpoint to.")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=sorted(DTYPES),
        help="dtype of the written weights. With float16/bfloat16 the vision path (DINOv2, proposer, region encoder) "
        "stays "
        "float32 unless --override keep_vision_path_fp32=false.",
    )
    parser.add_argument("--image_size", type=int, default=448, help="Processor input size (448 for released models).")
    parser.add_argument(
        "--override",
        type=_parse_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Set a native GromaConfig field (JSON value), e.g. region_fuse_groups=8 for scaled-down checkpoints.",
    )
    parser.add_argument(
        "--legacy_tokenizer",
        choices=["true", "false"],
        default=None,
        help="Force the tokenizer's `legacy` flag (default: what the original tokenizer_config.json says).",
    )
    parser.add_argument(
        "--vision_tower",
        default=None,
        help="GroundingGPT only: folder (or Hub id) of its CLIP tower, openai/clip-vit-large-patch14-336, which the "
        "original checkpoint does not contain (default: the original config's mm_vision_tower).",
    )
    parser.add_argument("--max_shard_size", default="5GB", help="Largest safetensors shard.")
    parser.add_argument("--overwrite", action="store_true", help="Replace a non-empty --output_dir.")
    parser.add_argument(
        "--push_to_hub",
        metavar="REPO",
        default=None,
        help="Upload the finished folder (weights, processor, chat template, generation config, code, card) to "
        "this Hub repository; its model card then loads REPO.",
    )
    parser.add_argument(
        "--eval_results",
        type=Path,
        default=None,
        help="JSON list of evaluation results for the model card's model-index (keyword arguments of "
        "huggingface_hub.EvalResult: task_type, dataset_type, dataset_name, metric_type, metric_value, ...).",
    )
    args = parser.parse_args(argv)
    convert_checkpoint(
        args.input_dir,
        args.output_dir,
        dtype=args.dtype,
        image_size=args.image_size,
        overrides=dict(args.override),
        legacy_tokenizer=None if args.legacy_tokenizer is None else args.legacy_tokenizer == "true",
        max_shard_size=args.max_shard_size,
        overwrite=args.overwrite,
        vision_tower=args.vision_tower,
        repo_id=args.push_to_hub,
        eval_results=json.loads(args.eval_results.read_text()) if args.eval_results else (),
        push_to_hub=args.push_to_hub is not None,
    )


if __name__ == "__main__":
    main()
