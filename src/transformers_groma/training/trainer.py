"""Groma's Trainer subclasses and the train-and-save sequence shared by the training scripts."""

import json
import logging as python_logging
import os
import re
import sys

import datasets
import torch
import transformers
from peft import PeftModel
from pycocotools.coco import COCO
from torch.utils.data import Dataset, Sampler
from transformers import Trainer
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from ..evaluation.detection import coco_box_metrics, proposals_to_detections
from ..model_card import write_model_card
from .arguments import GromaTrainingArguments
from .mixture import MixtureDataset
from .sampler import SourceGroupedSampler


logger = logging.get_logger(__name__)


class GromaTrainer(Trainer):
    """[`~transformers.Trainer`] with Groma's sampler and optimizer grouping.

    - With `args.group_by_source` and a [`MixtureDataset`], training batches come from [`SourceGroupedSampler`]
      (single-source micro-batches, seeded with `args.data_seed` or `args.seed`).
    - Parameters whose name contains one of `args.lr_multiplier_patterns` train at `args.lr_multiplier` x the
      learning rate (the original's 0.1 x for the deformable attention's `sampling_offsets`); weight decay is split
      as in the Trainer (none on biases and norms).
    - Checkpoints keep the runtime parameter names (`GromaPreTrainedModel.save_pretrained`), so resuming restores
      every weight.
    """

    args: GromaTrainingArguments

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not (self.args.group_by_source and isinstance(dataset, MixtureDataset)):
            return super()._get_train_sampler(train_dataset)
        chunk_size = self.args.train_batch_size * self.args.gradient_accumulation_steps
        too_small = [
            f"{name} ({size})" for name, size in zip(dataset.source_names, dataset.source_sizes) if size < chunk_size
        ]
        if len(too_small) == len(dataset.source_sizes):
            raise ValueError(
                f"Every data source is smaller than one single-source chunk of {chunk_size} samples (per-device batch "
                f"x gradient accumulation): {', '.join(too_small)}. Lower the batch size or pass `--group_by_source false`."
            )
        if too_small:
            logger.warning(
                f"These sources are smaller than one single-source chunk of {chunk_size} samples and are never drawn: "
                f"{', '.join(too_small)}."
            )
        return SourceGroupedSampler(dataset.source_sizes, chunk_size, seed=self.args.effective_data_seed)

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is not None or not self.args.lr_multiplier_patterns:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay_names = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, parameter in opt_model.named_parameters():
            if parameter.requires_grad:
                scaled = any(pattern in name for pattern in self.args.lr_multiplier_patterns)
                groups.setdefault((name in decay_names, scaled), []).append(parameter)
        param_groups = [
            {
                "params": parameters,
                "weight_decay": self.args.weight_decay if decay else 0.0,
                "lr": self.args.learning_rate * (self.args.lr_multiplier if scaled else 1.0),
            }
            for (decay, scaled), parameters in groups.items()
        ]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer


class GromaDetectionTrainer(GromaTrainer):
    """[`GromaTrainer`] whose evaluation reports class-agnostic COCO box AP/AR (and the detection loss).

    Args:
        coco_gt: Class-agnostic ground truth of the evaluation set (`transformers_groma.evaluation.class_agnostic_coco`).
        max_detections: Proposals kept per image, by fused objectness score.
        *args, **kwargs: Passed to [`~transformers.Trainer`].
    """

    def __init__(self, *args, coco_gt: COCO | None = None, max_detections: int = 100, **kwargs):
        super().__init__(*args, **kwargs)
        self.coco_gt = coco_gt
        self.max_detections = max_detections

    def evaluate(
        self,
        eval_dataset: Dataset | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Class-agnostic COCO box AP/AR of the proposals (`max_detections` per image) and the mean detection loss
        over `eval_dataset` (default: the trainer's), logged and returned as `{metric_key_prefix}_<name>`.

        Raises:
            ValueError: if the trainer was built without `coco_gt`, the ground truth the metrics are computed against.
        """
        if self.coco_gt is None:
            raise ValueError("Detection evaluation needs the ground truth: pass `--validation_annotation_file`.")
        dataloader = self.get_eval_dataloader(eval_dataset)
        self.model.eval()
        detections, losses = [], []
        for batch in dataloader:
            batch = self._prepare_inputs(batch)
            with torch.no_grad(), self.autocast_smart_context_manager():
                outputs = self.model(**batch)
            losses.append(self.accelerator.gather_for_metrics(outputs.loss.detach()[None]))
            per_image = proposals_to_detections(outputs, batch["labels"], self.max_detections)
            for image_detections in self.accelerator.gather_for_metrics(per_image, use_gather_object=True):
                detections.extend(image_detections)
        metrics = coco_box_metrics(self.coco_gt, detections)
        metrics["loss"] = torch.cat(losses).float().mean().item()
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in metrics.items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def setup_logging(training_args: GromaTrainingArguments) -> None:
    """Log to stdout at the level of `training_args` (main process: info; others: warnings), as HF examples do."""
    python_logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[python_logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()
    python_logging.getLogger("transformers_groma").setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def resolve_checkpoint(training_args: GromaTrainingArguments) -> str | None:
    """The checkpoint to resume from: `resume_from_checkpoint`, else (with `auto_resume`) the newest complete
    `checkpoint-*` of `output_dir`, else None.

    A checkpoint is complete when its `trainer_state.json`, which the Trainer writes last, is readable; newer
    incomplete ones (a run killed while saving) are skipped with a warning naming them.

    Raises:
        FileExistsError: when `output_dir` holds a finished run (its final `trainer_state.json`) and
            `resume_from_checkpoint` is unset: training again would extend it or overwrite its final model.
    """
    if training_args.resume_from_checkpoint is not None:
        return training_args.resume_from_checkpoint
    output_dir = training_args.output_dir
    if not os.path.isdir(output_dir):
        return None
    finished_step = _trainer_state_step(os.path.join(output_dir, TRAINER_STATE_NAME))
    if finished_step is not None:
        raise FileExistsError(
            f"--output_dir {output_dir} holds a finished run ({finished_step} steps; its final model is saved "
            "there). Choose a new --output_dir, or pass --resume_from_checkpoint to continue that run on purpose."
        )
    if not training_args.auto_resume:
        return None
    checkpoints = sorted(
        (int(match.group(1)), entry)
        for entry in os.listdir(output_dir)
        if (match := _CHECKPOINT_PATTERN.fullmatch(entry)) and os.path.isdir(os.path.join(output_dir, entry))
    )
    skipped = []
    for _, name in reversed(checkpoints):
        checkpoint = os.path.join(output_dir, name)
        if _trainer_state_step(os.path.join(checkpoint, TRAINER_STATE_NAME)) is None:
            skipped.append(name)
            continue
        if skipped:
            logger.warning(f"Skipping incomplete checkpoint(s) {skipped} (no readable {TRAINER_STATE_NAME}).")
        logger.warning(f"Resuming from {checkpoint} (pass `--auto_resume false` to start over).")
        return checkpoint
    if skipped:
        logger.warning(f"Starting over: checkpoint(s) {skipped} in {output_dir} are incomplete.")
    return None


_CHECKPOINT_PATTERN = re.compile(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)")


def _trainer_state_step(path: str) -> int | None:
    """`global_step` of a trainer state file, or None when it is missing or damaged (a run killed while saving)."""
    try:
        with open(path, encoding="utf-8") as handle:
            step = json.load(handle)["global_step"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return step if isinstance(step, int) else None


def end_distributed_run() -> None:
    """Wait for every rank, then destroy the process group, so that no rank exits while another still talks to it
    (gloo aborts a process whose peer has gone). A no-op outside a distributed run."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def write_training_card(trainer: Trainer, finetuned_from: str | None) -> None:
    """Write the model card of a finished run into `output_dir`: trained weights, or a LoRA adapter when the model is
    a PEFT model (its base model's config describes it)."""
    model = trainer.model
    is_adapter = isinstance(model, PeftModel)
    config = model.get_base_model().config if is_adapter else model.config
    sources = getattr(trainer.train_dataset, "source_names", None)
    write_model_card(
        trainer.args.output_dir,
        config,
        "adapter" if is_adapter else "trained",
        source=finetuned_from,
        repo_id=trainer.args.hub_model_id or os.path.basename(os.path.normpath(trainer.args.output_dir)),
        details=f"Training data: {', '.join(sources)}." if sources else "",
    )


def train_and_save(trainer: Trainer, finetuned_from: str | None, merge_adapters: bool = False) -> dict[str, float]:
    """Train (resuming when possible); save the model, its processor, the trainer state and a model card; then
    evaluate when the trainer has an evaluation set.

    Args:
        trainer: The configured trainer; its `processing_class` is saved with the model and every checkpoint.
        finetuned_from: The model training started from (a Hub id or a folder), for the model card.
        merge_adapters: The model is a `PeftModel`: merge its adapters into the base weights before saving, so the
            output folder holds the whole model.

    Returns:
        The training metrics, and the evaluation metrics when evaluated.
    """
    result = trainer.train(resume_from_checkpoint=resolve_checkpoint(trainer.args))
    if merge_adapters:
        trainer.model = trainer.model.merge_and_unload()
    trainer.model.config.use_cache = True  # inference default; the Trainer turned it off for training
    trainer.save_model()
    trainer.save_state()
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    if trainer.args.should_save:
        write_training_card(trainer, finetuned_from)
    metrics = dict(result.metrics)
    if trainer.eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    return metrics
