"""Training of Groma's three stages (needs the `train` extra: `pip install transformers-groma[train]`).

- `groma-train-detection` (`run_detection.main`): detection pretraining of the region proposer (stage 1).
- `groma-train` (`run_vl.main`): alignment (`--stage align`, stage 2), instruction finetuning (`--stage finetune`,
  stage 3) and finetuning on your own JSONL data (`--stage custom`).

The building blocks are importable for custom loops: data adapters and mixtures, the label-building encoder, the
collators, the source-grouped sampler, the Trainer subclasses and the model setup of each stage.
"""

from ..evaluation.detection import class_agnostic_coco, coco_box_metrics, proposals_to_detections
from .arguments import (
    DataArguments,
    DetectionDataArguments,
    DetectionModelArguments,
    GromaDetectionTrainingArguments,
    GromaTrainingArguments,
    ModelArguments,
    parse_arguments,
)
from .augmentation import DetectionAugmentation
from .collator import DetectionDataCollator, GromaDataCollator
from .conversation_dataset import ConversationDataset, ConversationEncoder
from .data_config import DataSource, load_data_config
from .detection_data import (
    DETECTION_ADAPTERS,
    BoxFilter,
    DetectionDataset,
    build_detection_eval_dataset,
    build_detection_mixture,
)
from .mixture import MixtureDataset, build_conversation_mixture
from .model_setup import (
    apply_lora,
    assemble_stage2_model,
    build_detection_model,
    build_vl_model,
    configure_vl_trainable,
    freeze_for_detection,
)
from .records import InvalidRecordError, build_records, check_conversation_record, check_detection_record
from .sampler import SourceGroupedSampler
from .sources import CONVERSATION_ADAPTERS
from .trainer import GromaDetectionTrainer, GromaTrainer


__all__ = [
    "CONVERSATION_ADAPTERS",
    "DETECTION_ADAPTERS",
    "BoxFilter",
    "ConversationDataset",
    "ConversationEncoder",
    "DataArguments",
    "DataSource",
    "DetectionAugmentation",
    "DetectionDataArguments",
    "DetectionDataCollator",
    "DetectionDataset",
    "DetectionModelArguments",
    "GromaDataCollator",
    "GromaDetectionTrainer",
    "GromaDetectionTrainingArguments",
    "GromaTrainer",
    "GromaTrainingArguments",
    "InvalidRecordError",
    "MixtureDataset",
    "ModelArguments",
    "SourceGroupedSampler",
    "apply_lora",
    "assemble_stage2_model",
    "build_conversation_mixture",
    "build_detection_eval_dataset",
    "build_detection_mixture",
    "build_detection_model",
    "build_records",
    "build_vl_model",
    "check_conversation_record",
    "check_detection_record",
    "class_agnostic_coco",
    "coco_box_metrics",
    "configure_vl_trainable",
    "freeze_for_detection",
    "load_data_config",
    "parse_arguments",
    "proposals_to_detections",
]
