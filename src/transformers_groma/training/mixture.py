"""A training set made of several sources, and the vision-language one built from a mixture config."""

from collections.abc import Sequence
from functools import partial

from torch.utils.data import ConcatDataset, Dataset
from transformers import PreTrainedTokenizerBase
from transformers.image_processing_utils import BaseImageProcessor
from transformers.utils import logging

from .conversation_dataset import ConversationDataset, ConversationEncoder
from .data_config import DataSource
from .records import build_records, check_conversation_record
from .sources import CONVERSATION_ADAPTERS


logger = logging.get_logger(__name__)


class MixtureDataset(ConcatDataset):
    """The concatenation of per-source datasets, remembering where each source starts.

    [`SourceGroupedSampler`] uses `source_sizes` to build micro-batches that hold a single source.

    Args:
        datasets: One dataset per source.
        source_names: Their names, for logs.
    """

    def __init__(self, datasets: Sequence[Dataset], source_names: Sequence[str]):
        super().__init__(datasets)
        self.source_names = list(source_names)

    @property
    def source_sizes(self) -> list[int]:
        """Number of samples of each source, in concatenation order."""
        return [len(dataset) for dataset in self.datasets]

    def summary(self) -> str:
        """One line per source: its name and number of samples."""
        return "\n".join(f"  {name}: {size}" for name, size in zip(self.source_names, self.source_sizes))


def build_conversation_mixture(
    sources: Sequence[DataSource],
    tokenizer: PreTrainedTokenizerBase,
    image_processor: BaseImageProcessor,
    default_template: str,
    max_length: int,
    max_refer_boxes: int,
    seed: int,
    skip_bad_records: bool = False,
) -> MixtureDataset:
    """Read, convert, check and sub-sample every source of a vision-language mixture.

    Every record is checked when the mixture is built (see [`check_conversation_record`] and
    [`ConversationEncoder.check`]), so that training never meets a bad one.

    Args:
        sources: The mixture (see `data_config.load_data_config`).
        tokenizer: Tokenizer with Groma's tokens.
        image_processor: Image processor of the model.
        default_template: Conversation template of sources that do not set one (`"default"` or `"llava"`).
        max_length: Most tokens per sample before placeholder expansion.
        max_refer_boxes: Most user boxes per sample (the model's `max_region_num`).
        seed: Data seed (sub-sampling and instruction phrasings).
        skip_bad_records: Drop bad records with a warning instead of raising.

    Raises:
        ValueError: for an unknown source type, or a bad record (unless `skip_bad_records`).
    """
    datasets = []
    for source in sources:
        if source.type not in CONVERSATION_ADAPTERS:
            raise ValueError(
                f"Data source {source.name}: unknown type {source.type!r} for a vision-language stage; choose from "
                f"{sorted(CONVERSATION_ADAPTERS)}."
            )
        encoder = ConversationEncoder(tokenizer, source.template or default_template, max_length)
        check = partial(check_record, max_refer_boxes=max_refer_boxes, encoder=encoder)
        records = build_records(source, CONVERSATION_ADAPTERS[source.type], check, seed, skip_bad_records)
        datasets.append(ConversationDataset(records, encoder, image_processor, source.name))
    mixture = MixtureDataset(datasets, [source.name for source in sources])
    logger.info(f"Training mixture ({len(mixture)} samples):\n{mixture.summary()}")
    return mixture


def check_record(record: dict, max_refer_boxes: int, encoder: ConversationEncoder) -> str | None:
    """[`check_conversation_record`], then [`ConversationEncoder.check`] on the record's messages (whose note on
    truncation it returns)."""
    check_conversation_record(record, max_refer_boxes)
    return encoder.check(record["messages"])
