"""`groma-train-detection`: detection pretraining of Groma's region proposer (stage 1).

```bash
groma-train-detection examples/stage1_detection.yaml
groma-train-detection --init_from_tiny --data_config mixture.yaml --output_dir runs/tiny-det --max_steps 10
```
"""

from transformers import set_seed

from ..evaluation.detection import class_agnostic_coco
from ..processing import GromaImageProcessor
from .arguments import (
    DetectionDataArguments,
    DetectionModelArguments,
    GromaDetectionTrainingArguments,
    parse_arguments,
)
from .augmentation import DetectionAugmentation
from .collator import DetectionDataCollator
from .data_config import load_data_config
from .detection_data import BoxFilter, build_detection_eval_dataset, build_detection_mixture
from .model_setup import build_detection_model, freeze_for_detection, log_trainable_parameters
from .trainer import GromaDetectionTrainer, end_distributed_run, setup_logging, train_and_save


def run(argv: list[str] | None = None) -> dict[str, float]:
    """Run detection pretraining; `argv` defaults to the command line. Returns the train (and eval) metrics."""
    model_args, data_args, training_args = parse_arguments(
        (DetectionModelArguments, DetectionDataArguments, GromaDetectionTrainingArguments), argv
    )
    setup_logging(training_args)
    set_seed(training_args.seed)

    model, default_image_size = build_detection_model(model_args)
    image_size = data_args.image_size or default_image_size
    freeze_for_detection(model, model_args.freeze_vision_tower)
    log_trainable_parameters(model)

    augmentation = DetectionAugmentation(
        image_size,
        short_sides=data_args.short_sides,
        max_long_side=data_args.max_long_side,
        crop_size_range=tuple(data_args.crop_size_range),
        flip_prob=data_args.flip_prob,
    )
    box_filter = BoxFilter(data_args.min_box_side, tuple(data_args.sa1b_box_area_range))
    train_dataset = build_detection_mixture(
        load_data_config(data_args.data_config),
        image_size,
        augmentation,
        box_filter,
        training_args.effective_data_seed,
        data_args.skip_bad_records,
    )
    eval_dataset = coco_gt = None
    if data_args.validation_annotation_file:
        eval_dataset = build_detection_eval_dataset(
            data_args.validation_annotation_file,
            data_args.validation_image_dir,
            image_size,
            data_args.skip_bad_records,
        )
        coco_gt = class_agnostic_coco(data_args.validation_annotation_file)

    trainer = GromaDetectionTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=DetectionDataCollator(),
        processing_class=GromaImageProcessor(size={"height": image_size, "width": image_size}),
        coco_gt=coco_gt,
        max_detections=data_args.max_detections,
    )
    return train_and_save(
        trainer,
        finetuned_from=model_args.model_name_or_path or model_args.vision_model_name_or_path,
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point: `run` without a return value, so the script exits with status 0 (metrics are saved in
    the output folder)."""
    run(argv)
    end_distributed_run()


if __name__ == "__main__":
    main()
