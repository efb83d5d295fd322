"""Train the synthetic-world demo model from scratch: Groma's three stages on scenes of coloured shapes.

    python examples/demo_model/train_demo.py runs/demo            # the shipped recipe (seeds fixed)
    python examples/demo_model/train_demo.py runs/demo --scale 0.1  # a quick try (fewer scenes and steps)

Every Groma stage goes through the public training entry points (`groma-train-detection`, `groma-train`), on data
written by `transformers_groma.synthetic.write_datasets`:

0. a random DINOv2 + region proposer (`init/proposer`) and a random Llama with a word-level tokenizer made for the
   world's texts (`init/llm`, initialized at ~1/sqrt(width), as a 128-wide model needs), every legacy flag off;
L. language pretraining (`language_pretraining.py`): the Llama learns the world's conversations told in words
   (`init/language`), standing in for the pretrained Vicuna that Groma starts from;
1. `groma-train-detection`: DINOv2 and the proposer learn class-agnostic boxes (both objectness heads: the detection
   file is given once per head);
2. `groma-train --stage align` from `--vision_proposer_path` + `--llm_path init/language`: with the LLM frozen, the
   bridge, the region encoder and the Groma-token rows learn to write what the LLM reads, from whole conversations
   (a grounded caption, then REC and region captions), multi-turn REC and single region captions, half of them on
   loose boxes like the proposals a grounded caption points at (`default` template);
3. `groma-train --stage finetune`: everything but the vision path learns from the same data in the `llava` template
   that inference uses.

The result (`OUTPUT/final`) is a normal Groma folder, stored in float16 except the vision path. This is a toy world
of coloured squares, circles and triangles, not a model of real images.
"""

import argparse
import json
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from language_pretraining import pretrain_language
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from torchvision.ops import box_convert, box_iou
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer, set_seed

from transformers_groma import GromaConfig, GromaForConditionalGeneration, GromaForRegionProposal, GromaProcessor
from transformers_groma.processing import (
    CATEGORY_GROUNDING_TEMPLATES,
    DETAILED_REGION_CAPTION_TEMPLATES,
    GROUNDED_CAPTION_TEMPLATES,
    REC_TEMPLATES,
    REGION_CAPTION_TEMPLATES,
    GromaImageProcessor,
    add_groma_tokens,
    record_legacy_flag,
)
from transformers_groma.processing.prompts import (
    ASSISTANT_ROLE,
    FIRST_ASSISTANT_MESSAGE,
    FIRST_USER_MESSAGE,
    SYSTEM_PROMPT,
    USER_ROLE,
)
from transformers_groma.synthetic import CATEGORIES, write_datasets
from transformers_groma.synthetic.evaluation import evaluate_synthetic_grounding
from transformers_groma.training import run_detection, run_vl


SEED = 0
# 16 x 16 patches: at 168 px (12 x 12) the smallest shapes span about one patch, and their shape is misread
IMAGE_SIZE = 224
VISION = {
    "model_type": "dinov2",
    "hidden_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "mlp_ratio": 2,
    "patch_size": 14,
    "image_size": IMAGE_SIZE,
    "layer_norm_eps": 1e-6,
}
PROPOSER = {
    "d_model": 64,
    "encoder_layers": 1,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 128,
    "decoder_ffn_dim": 128,
    "num_queries": 20,
    "bbox_head_hidden_dim": 64,
    "dropout": 0.0,
    "legacy_frozen_reference_points": False,
    "legacy_learned_query_content": False,
}
GROMA = {
    "image_feature_layer": -1,
    "proposer_feature_layers": [-2, -1],
    "region_feature_layers": [-4, -2, -1],  # the patch embeddings keep the shapes' outlines
    "max_region_num": 8,
    "region_hidden_size": 32,
    "region_position_hidden_size": 32,
    "region_fuse_rounds": 1,
    "region_fuse_groups": 8,
    "roi_output_size": 7,
    "legacy_roi_box_format": False,
    "legacy_roi_spatial_scale": False,
    "legacy_position_interpolation": False,
}
LLM = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "initializer_range": 0.09,  # ~1/sqrt(hidden_size): Llama's 0.02 suits 4096-wide models, not 128-wide ones
}
QUIET = ["--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no"]
EVAL_SEED = 10**9  # fresh scenes: `write_datasets` seeds scene i of chunk c as (SEED + c) * 10**6 + i


def world_texts() -> list[str]:
    """Every text the world's conversations can contain, to build the word-level vocabulary from."""
    texts = [SYSTEM_PROMPT, FIRST_USER_MESSAGE, FIRST_ASSISTANT_MESSAGE, f"{USER_ROLE}: {ASSISTANT_ROLE}:"]
    texts += [template.format(f"the {name}") for template in REC_TEMPLATES for name in CATEGORIES]
    texts += [template.format(name) for template in CATEGORY_GROUNDING_TEMPLATES for name in CATEGORIES]
    texts += [*REGION_CAPTION_TEMPLATES, *DETAILED_REGION_CAPTION_TEMPLATES, *GROUNDED_CAPTION_TEMPLATES]
    texts += [f"The image shows a {name}, a {name} and a {name}. A {name}." for name in CATEGORIES]
    return texts


def build_tokenizer() -> LlamaTokenizer:
    """A Llama (Metaspace BPE) tokenizer whose merges spell every word of `world_texts` as one token, plus Groma's
    114 tokens."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    backend.train_from_iterator(world_texts(), trainer)
    state = json.loads(backend.to_str())["model"]
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in state["merges"]]
    tokenizer = LlamaTokenizer(vocab=state["vocab"], merges=merges, add_bos_token=True, legacy=True)
    record_legacy_flag(tokenizer)
    add_groma_tokens(tokenizer)
    return tokenizer


def write_initial_models(init_dir: Path) -> tuple[Path, Path]:
    """Random starting points: a `GromaForRegionProposal` folder and a Llama folder (with its tokenizer)."""
    set_seed(SEED)
    proposer_dir, llm_dir = init_dir / "proposer", init_dir / "llm"
    config = GromaConfig(vision_config=VISION, proposer_config=PROPOSER, **GROMA)
    GromaForRegionProposal(config).save_pretrained(proposer_dir)
    GromaImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(proposer_dir)
    tokenizer = build_tokenizer()
    llm_config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **LLM,
    )
    LlamaForCausalLM(llm_config).save_pretrained(llm_dir)
    tokenizer.save_pretrained(llm_dir)
    return proposer_dir, llm_dir


def write_data(data_dir: Path, num_scenes: int, num_chunks: int) -> list[dict[str, Path]]:
    """`num_scenes` scenes written by `write_datasets` in `num_chunks` folders (seeds `SEED`, `SEED + 1`, ...), in
    parallel processes."""
    sizes = [num_scenes // num_chunks + (index < num_scenes % num_chunks) for index in range(num_chunks)]
    folders = [data_dir / f"chunk{index}" for index in range(num_chunks)]
    with ProcessPoolExecutor(max_workers=min(num_chunks, os.cpu_count() or 1)) as pool:
        return list(pool.map(write_datasets, folders, sizes, [SEED + index for index in range(num_chunks)]))


def write_rec_conversations(custom_file: Path, output_file: Path) -> None:
    """Multi-turn REC: from every line of `write_datasets`' custom file, only the REC exchanges (one per object),
    in a seeded random order. Each conversation teaches pointing at every object of its scene."""
    rng = random.Random(SEED)
    lines = []
    for line in custom_file.read_text().splitlines():
        entry = json.loads(line)
        turns = entry["conversations"]
        exchanges = [
            turns[index : index + 2]
            for index in range(0, len(turns), 2)
            if turns[index + 1]["value"] == "<roi><ground_box></roi>"
        ]
        rng.shuffle(exchanges)
        lines.append(json.dumps({**entry, "conversations": [turn for pair in exchanges for turn in pair]}) + "\n")
    output_file.write_text("".join(lines))


def write_loose_region_captions(region_caption_file: Path, output_file: Path, fraction: float = 0.5) -> None:
    """`write_datasets`' region captions with `fraction` of the boxes (x, y, w, h pixels) moved at random, each to
    a box at IoU >= 0.5 with the object, as loose as the proposals a grounded caption points at."""
    rng = random.Random(SEED)
    data = json.loads(region_caption_file.read_text())
    sizes = {image["id"]: (image["width"], image["height"]) for image in data["images"]}
    for annotation in data["annotations"]:
        if rng.random() < fraction:
            annotation["bbox"] = loose_box(annotation["bbox"], *sizes[annotation["image_id"]], rng)
    output_file.write_text(json.dumps(data))


def loose_box(box: list[float], width: int, height: int, rng: random.Random) -> list[float]:
    """`box` (x, y, w, h) with each side moved by up to a quarter of the box's size, kept in the image and at
    IoU >= 0.5 with `box`."""
    x, y, w, h = box
    exact = box_convert(torch.tensor([box]), "xywh", "xyxy")
    while True:
        x1, x2 = x + rng.uniform(-0.25, 0.25) * w, x + w + rng.uniform(-0.25, 0.25) * w
        y1, y2 = y + rng.uniform(-0.25, 0.25) * h, y + h + rng.uniform(-0.25, 0.25) * h
        x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
        if x2 - x1 > 2 and y2 - y1 > 2 and box_iou(torch.tensor([[x1, y1, x2, y2]]), exact).item() >= 0.5:
            return [x1, y1, x2 - x1, y2 - y1]


def write_mixtures(chunks: list[dict[str, Path]], out: Path) -> None:
    """`detection.json` (every detection file once per objectness head) and `vl.json` in `out`: the custom
    conversations (a grounded caption, then a REC and a region-caption exchange per object), multi-turn REC that
    starts without a caption to copy from, and single region captions (half of them on loose boxes)."""
    detection, vl = [], []
    for index, paths in enumerate(chunks):
        image_dir = str(paths["image_dir"])
        for head in ("coco", "sa1b"):
            detection.append(
                {
                    "type": "coco_detection",
                    "annotation_file": str(paths["detection"]),
                    "image_dir": image_dir,
                    "head": head,
                    "name": f"shapes{index}-{head}",
                }
            )
        rec_conversations = paths["custom"].with_name("rec_conversations.jsonl")
        write_rec_conversations(paths["custom"], rec_conversations)
        region_captions = paths["region_caption"].with_name("region_caption_loose.json")
        write_loose_region_captions(paths["region_caption"], region_captions)
        for kind, annotation_file, name in (
            ("custom", paths["custom"], "conversations"),
            ("custom", rec_conversations, "rec_conversations"),
            ("vg_single", region_captions, "region_captions"),
        ):
            vl.append(
                {
                    "type": kind,
                    "annotation_file": str(annotation_file),
                    "image_dir": image_dir,
                    "name": f"{name}{index}",
                }
            )
    (out / "detection.json").write_text(json.dumps({"sources": detection}))
    (out / "vl.json").write_text(json.dumps({"sources": vl}))


def save_final(stage3_dir: Path, final_dir: Path) -> None:
    """The stage-3 model stored in float16 (the vision path stays float32), with its processor."""
    model = GromaForConditionalGeneration.from_pretrained(stage3_dir, dtype=torch.float16)
    model.save_pretrained(final_dir)
    GromaProcessor.from_pretrained(stage3_dir).save_pretrained(final_dir)


def evaluate(model_dir: Path, num_scenes: int) -> dict[str, float]:
    """The synthetic-grounding metrics on `num_scenes` scenes never used in training (seeds from 10**9)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = GromaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    processor = GromaProcessor.from_pretrained(model_dir)
    return evaluate_synthetic_grounding(model, processor, range(EVAL_SEED, EVAL_SEED + num_scenes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--num_scenes", type=int, default=4000)
    parser.add_argument("--num_chunks", type=int, default=4, help="Data folders written in parallel.")
    parser.add_argument("--detection_steps", type=int, default=2000)
    parser.add_argument("--align_steps", type=int, default=2100)
    parser.add_argument("--finetune_steps", type=int, default=800)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--detection_lr", type=float, default=1e-3)
    parser.add_argument("--align_lr", type=float, default=1e-3)
    parser.add_argument("--finetune_lr", type=float, default=5e-4)
    parser.add_argument("--num_workers", type=int, default=0, help="Dataloader workers of every stage.")
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply the scene and step counts (quick tries).")
    parser.add_argument("--stages", default="0L123", help="Which stages to run (the earlier outputs must exist).")
    parser.add_argument("--vl_dir", type=Path, help="Where stages 2-3 write (default: output_dir).")
    parser.add_argument("--evaluate", type=int, default=0, help="Evaluate the result on this many fresh scenes.")
    args = parser.parse_args()
    out = args.output_dir.resolve()
    vl_dir = (args.vl_dir or out).resolve()
    detection_dir, align_dir, finetune_dir = out / "detection", vl_dir / "align", vl_dir / "finetune"
    steps = [max(1, int(n * args.scale)) for n in (args.detection_steps, args.align_steps, args.finetune_steps)]
    common = [
        "--seed", str(SEED), "--per_device_train_batch_size", str(args.batch_size), "--logging_steps", "50",
        "--lr_scheduler_type", "cosine", "--warmup_steps", "0.05", "--max_grad_norm", "1.0",
        "--dataloader_num_workers", str(args.num_workers), *QUIET,
    ]  # fmt: skip
    started = time.time()

    def done(what: str) -> None:
        print(f"{what} after {time.time() - started:.0f} s", flush=True)

    if "0" in args.stages:
        out.mkdir(parents=True, exist_ok=True)
        write_mixtures(
            write_data(out / "data", max(args.num_chunks, int(args.num_scenes * args.scale)), args.num_chunks), out
        )
        write_initial_models(out / "init")
        done("data and initial models")
    if "L" in args.stages:
        pretrain_language(
            out / "init" / "llm",
            out / "init" / "language",
            LlamaTokenizer.from_pretrained(out / "init" / "llm"),
            num_image_tokens=(IMAGE_SIZE // VISION["patch_size"] // 2) ** 2,
            max_regions=GROMA["max_region_num"],
            batch_size=2 * args.batch_size,
            seed=SEED,
            step_scale=args.scale,
        )
        done("language pretraining")
    if "1" in args.stages:
        run_detection.run([
            "--model_name_or_path", str(out / "init" / "proposer"), "--freeze_vision_tower", "false",
            "--data_config", str(out / "detection.json"), "--image_size", str(IMAGE_SIZE),
            "--short_sides", str(IMAGE_SIZE), "--crop_size_range", "4096", "4096",
            "--output_dir", str(detection_dir), "--max_steps", str(steps[0]),
            "--learning_rate", str(args.detection_lr), "--weight_decay", "1e-4", *common,
        ])  # fmt: skip
        done("stage 1")
    vl_common = ["--data_config", str(out / "vl.json"), "--model_max_length", "512", "--weight_decay", "0.0", *common]
    if "2" in args.stages:
        run_vl.run([
            "--stage", "align", "--vision_proposer_path", str(detection_dir),
            "--llm_path", str(out / "init" / "language"), "--output_dir", str(align_dir),
            "--max_steps", str(steps[1]), "--learning_rate", str(args.align_lr), *vl_common,
        ])  # fmt: skip
        done("stage 2")
    if "3" in args.stages:
        run_vl.run([
            "--stage", "finetune", "--model_name_or_path", str(align_dir), "--output_dir", str(finetune_dir),
            "--max_steps", str(steps[2]), "--learning_rate", str(args.finetune_lr), *vl_common,
        ])  # fmt: skip
        save_final(finetune_dir, vl_dir / "final")
        done(f"stage 3 (model in {vl_dir / 'final'})")
    if args.evaluate:
        metrics = evaluate(vl_dir / "final", args.evaluate)
        (vl_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        done(f"evaluation {json.dumps(metrics)}")


if __name__ == "__main__":
    main()
