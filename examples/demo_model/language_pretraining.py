"""Language pretraining of the demo model's small Llama: the toy counterpart of the Vicuna that Groma starts from.

A 7B Vicuna reaches Groma's stage 2 already able to find the entry of its context that matches a question and copy
the index written next to it. A random 128-wide Llama cannot, and it does not learn this through the image while
the region features are learned too: REC stays at chance. So the LLM first learns the world's conversations in words.
Every region slot holds the sum of the word embeddings of the object it covers (`red` + `square`), or keeps the
`<region>` embedding when the region shows background. Stage 2 then only has to make the region encoder write what
the LLM already reads. The schedule (`PHASES`) goes from easy to hard:

1. *listing*: the answer is `<refer_feat><r3>, <refer_feat><r0>.`, each `<refer_feat>` holding an object's words, so
   every index is one step from the words it has to match. Only the `<rK>` tokens are scored. The context first
   starts at `Regions:`, then it is the whole first turn (system prompt and image slots included);
2. *conversations*: what stages 2-3 train on (a grounded caption, then REC and region captions; REC alone; one region
   caption), in both chat templates, every answer token scored; the learning rate falls to 0, then a second,
   longer run at a lower rate falls to 0 again (held-out index accuracy 0.981 after the first, 0.993 after the
   second; the image-level model inherits the misses: with stages 2-3 unchanged, REC on the demo test's fresh scenes
   went from 0.949 to 0.972).
"""

import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset
from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

from transformers_groma.processing import (
    GROUNDED_CAPTION_TEMPLATES,
    REC_TEMPLATES,
    REGION_CAPTION_TEMPLATES,
    grounded_caption_prompt,
    rec_prompt,
    record_legacy_flag,
    region_caption_prompt,
)
from transformers_groma.synthetic import (
    COLORS,
    MAX_OBJECTS,
    SHAPES,
    SyntheticObject,
    caption_order,
    grounded_caption_answer,
    referring_expression,
    region_caption,
)
from transformers_groma.tokens import (
    GROUND_BOX_TOKEN,
    IGNORE_INDEX,
    IMAGE_TOKEN,
    REFER_BOX_TOKEN,
    REFER_FEAT_TOKEN,
    REGION_TOKEN,
)
from transformers_groma.training.collator import pad_text_features
from transformers_groma.training.conversation_dataset import ConversationEncoder


NO_WORDS = (-1, -1)
CONVERSATION_KINDS = ("custom", "rec", "region_caption")
REGIONS_MARK = "Regions:"  # where the short listing context starts


@dataclass(frozen=True)
class Phase:
    """One run of the schedule: which items, how many steps at which learning rate (constant, or falling linearly
    to 0 with `decay`), and whether the context starts at `Regions:` and only the `<rK>` answer tokens are scored."""

    kind: str
    steps: int
    learning_rate: float
    short_context: bool = False
    index_labels_only: bool = False
    decay: bool = False


PHASES = (
    Phase("listing", 1500, 1e-3, short_context=True, index_labels_only=True),
    Phase("listing", 1000, 1e-3, index_labels_only=True),
    Phase("conversations", 1400, 5e-4),
    Phase("conversations", 600, 5e-4, decay=True),
    Phase("conversations", 1500, 3e-4, decay=True),
)


class WordSlotEncoder(ConversationEncoder):
    """Renders the first turn as the model expands it: `<image>` repeated `num_image_tokens` times and `<region>` as
    `<r0><region><r1><region>...` for `num_regions` regions; with `short_context`, the text starts at `Regions:`."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, template: str, num_image_tokens: int, short_context: bool):
        super().__init__(tokenizer, template, max_length=10**6)
        self.num_image_tokens, self.short_context = num_image_tokens, short_context
        self.num_regions = 0

    def render(self, messages: list[dict]) -> str:
        regions = "".join(f"<r{index}>{REGION_TOKEN}" for index in range(self.num_regions))
        text = super().render(messages)
        text = text.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.num_image_tokens, 1).replace(REGION_TOKEN, regions, 1)
        return text[text.index(REGIONS_MARK) :] if self.short_context else text


# A word scene has no geometry: its objects are the world's objects without a box, told by the world's own texts.
WORD_OBJECTS = [SyntheticObject(color, shape, box=(0.0, 0.0, 0.0, 0.0)) for color in COLORS for shape in SHAPES]


class WordSlotDataset(Dataset):
    """Random scenes told in words. Item `i` is the same on every call: `input_ids`, `labels` and `slot_words`
    ((T, 2) colour and shape word ids of the object a slot shows, -1 where the token keeps its own embedding).

    Args:
        tokenizer: The LLM's tokenizer, holding Groma's tokens (each colour and shape one token).
        phase: What the items are (`Phase.kind`, `short_context`, `index_labels_only`).
        num_items: Dataset length.
        num_image_tokens: `<image>` slots per sample (the image tokens the vision path gives the LLM).
        max_regions: Most regions per scene (`GromaConfig.max_region_num`).
        seed: Seeds the scenes.
        kinds: The conversation kinds to draw from (`"custom"`, `"rec"`, `"region_caption"`).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        phase: Phase,
        num_items: int,
        num_image_tokens: int,
        max_regions: int,
        seed: int,
        kinds: tuple[str, ...] = CONVERSATION_KINDS,
    ):
        if phase.kind not in ("listing", "conversations"):
            raise ValueError(f"`phase.kind` must be 'listing' or 'conversations', got {phase.kind!r}.")
        self.phase, self.num_items, self.max_regions = phase, num_items, max_regions
        self.seed, self.kinds = seed, kinds
        self.encoders = [
            WordSlotEncoder(tokenizer, template, num_image_tokens, phase.short_context)
            for template in ("default", "llava")
        ]
        self.words = {}
        for obj in WORD_OBJECTS:
            ids = tokenizer(obj.name, add_special_tokens=False).input_ids
            if len(ids) != 2:
                raise ValueError(f"The tokenizer spells {obj.name!r} as {len(ids)} tokens, not 2.")
            self.words[obj] = tuple(ids)
        self.ids = {
            name: tokenizer.convert_tokens_to_ids(token)
            for name, token in (("region", REGION_TOKEN), ("refer_feat", REFER_FEAT_TOKEN))
        }
        self.index_ids = torch.tensor(tokenizer.convert_tokens_to_ids([f"<r{k}>" for k in range(max_regions)]))

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = random.Random(f"{self.seed}:{index}")
        objects = rng.sample(WORD_OBJECTS, rng.randint(1, MAX_OBJECTS))
        regions = objects + [None] * rng.randint(0, self.max_regions - len(objects))
        rng.shuffle(regions)
        index_of = {obj: regions.index(obj) for obj in objects}
        if self.phase.kind == "listing":
            messages, referred = self.listing(objects, index_of, rng)
        else:
            messages, referred = self.conversation(objects, index_of, rng, rng.choice(self.kinds))
        encoder = rng.choice(self.encoders)
        encoder.num_regions = len(regions)
        input_ids, labels = encoder.encode(messages)
        region_objects, referred = iter(regions), iter(referred)
        slot_words = []
        for token in input_ids:
            obj = None
            if token == self.ids["region"]:
                obj = next(region_objects)
            elif token == self.ids["refer_feat"]:
                obj = next(referred)
            slot_words.append(self.words[obj] if obj else NO_WORDS)
        input_ids, labels = torch.tensor(input_ids), torch.tensor(labels)
        labels[input_ids == self.ids["refer_feat"]] = IGNORE_INDEX
        if self.phase.index_labels_only:
            labels[~torch.isin(labels, self.index_ids)] = IGNORE_INDEX
        return {"input_ids": input_ids, "labels": labels, "slot_words": torch.tensor(slot_words)}

    @staticmethod
    def listing(objects, index_of, rng) -> tuple[list[dict], list]:
        """Each object shown in a `<refer_feat>` slot right before its index: `<refer_feat><r3>, <refer_feat><r0>.`"""
        answer = ", ".join(f"{REFER_FEAT_TOKEN}<r{index_of[obj]}>" for obj in objects) + "."
        prompt = grounded_caption_prompt(rng.randrange(len(GROUNDED_CAPTION_TEMPLATES)))
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], list(objects)

    @staticmethod
    def conversation(objects, index_of, rng, kind: str) -> tuple[list[dict], list]:
        """One of the stage 2-3 conversations (`write_datasets`' formats): a grounded caption, then REC and a region
        caption per object (`"custom"`); REC alone (`"rec"`); or one region caption (`"region_caption"`)."""
        messages, referred = [], []
        if kind == "custom":
            answer = grounded_caption_answer(objects)  # its `<ground_box>`es take the objects in `caption_order`
            for obj in caption_order(objects):
                answer = answer.replace(GROUND_BOX_TOKEN, f"<r{index_of[obj]}>", 1)
            messages += [
                {"role": "user", "content": grounded_caption_prompt(rng.randrange(len(GROUNDED_CAPTION_TEMPLATES)))},
                {"role": "assistant", "content": answer},
            ]
        asked = objects if kind != "region_caption" else [rng.choice(objects)]
        for obj in rng.sample(asked, len(asked)):
            index = index_of[obj]
            if kind != "region_caption":
                query = rec_prompt(referring_expression(obj), rng.randrange(len(REC_TEMPLATES)))
                messages += [
                    {"role": "user", "content": query},
                    {"role": "assistant", "content": f"<roi><r{index}></roi>"},
                ]
            if kind != "rec":
                query = region_caption_prompt(template_index=rng.randrange(len(REGION_CAPTION_TEMPLATES)))
                messages += [
                    {"role": "user", "content": query.replace(REFER_BOX_TOKEN, f"<r{index}>")},
                    {"role": "assistant", "content": region_caption(obj)},
                ]
                referred.append(obj)
        return messages, referred


class WordSlotLlama(nn.Module):
    """A causal LM whose slot tokens are embedded as the sum of their words' embeddings."""

    def __init__(self, llm: LlamaForCausalLM):
        super().__init__()
        self.llm = llm

    def forward(self, input_ids, attention_mask, slot_words, labels=None):
        embed = self.llm.get_input_embeddings()
        words = embed(slot_words.clamp(min=0)).sum(-2)
        inputs_embeds = torch.where(slot_words[..., :1] >= 0, words, embed(input_ids))
        return self.llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels)


def collate(features: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pads a list of `WordSlotDataset` items into a batch with its `attention_mask` (`slot_words` padded
    with -1)."""
    slot_words = pad_sequence([feature["slot_words"] for feature in features], batch_first=True, padding_value=-1)
    return {**pad_text_features(features, pad_token_id), "slot_words": slot_words}


@torch.no_grad()
def index_accuracy(llm: LlamaForCausalLM, dataset: WordSlotDataset, pad_token_id: int, batch_size: int = 32) -> float:
    """Teacher-forced accuracy of the `<rK>` answer tokens of `dataset` (REC, grounded phrases, listings)."""
    model = WordSlotLlama(llm).eval()
    correct = total = 0
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))], pad_token_id)
        labels = batch.pop("labels")[:, 1:]
        predicted = model(**batch).logits[:, :-1].argmax(-1)
        is_index = torch.isin(labels, dataset.index_ids)
        correct += (predicted[is_index] == labels[is_index]).sum().item()
        total += is_index.sum().item()
    return correct / max(total, 1)


def pretrain_language(
    llm_dir: Path,
    output_dir: Path,
    tokenizer: PreTrainedTokenizerBase,
    *,
    num_image_tokens: int,
    max_regions: int,
    batch_size: int,
    seed: int,
    phases: tuple[Phase, ...] = PHASES,
    step_scale: float = 1.0,
) -> list[float]:
    """Train the Llama in `llm_dir` through `phases` and save it (with `tokenizer`) to `output_dir`.

    AdamW at each phase's learning rate, gradients clipped to norm 1; consecutive phases of the same kind
    share the optimizer's state, a new kind or a phase after a decay starts a fresh optimizer.

    Returns:
        Each phase's index accuracy on 256 fresh word scenes of that phase.
    """
    torch.manual_seed(seed)
    llm = LlamaForCausalLM.from_pretrained(llm_dir)
    model, pad_token_id = WordSlotLlama(llm), tokenizer.pad_token_id
    accuracies, optimizer, started = [], None, time.time()
    for number, phase in enumerate(phases):
        if optimizer is None or phase.kind != phases[number - 1].kind or phases[number - 1].decay:
            optimizer = torch.optim.AdamW(llm.parameters(), lr=phase.learning_rate, weight_decay=0.0)
        steps = max(1, int(phase.steps * step_scale))
        dataset = WordSlotDataset(tokenizer, phase, steps * batch_size, num_image_tokens, max_regions, seed + number)
        model.train()
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = phase.learning_rate * (1 - step / steps if phase.decay else 1)
            batch = collate([dataset[step * batch_size + row] for row in range(batch_size)], pad_token_id)
            loss = model(**batch).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(llm.parameters(), 1.0)
            optimizer.step()
            if (step + 1) % 100 == 0:
                print(
                    f"phase {number}, step {step + 1}/{steps}: loss {loss.item():.4f} ({time.time() - started:.0f} s)"
                )
        held_out = WordSlotDataset(tokenizer, phase, 256, num_image_tokens, max_regions, seed + 100 + number)
        accuracies.append(index_accuracy(llm, held_out, pad_token_id))
        print(f"language pretraining, phase {number} ({phase.kind}): index accuracy {accuracies[-1]:.3f}", flush=True)
    llm.save_pretrained(output_dir)
    record_legacy_flag(tokenizer)  # the saved tokenizer keeps the `legacy` setting the texts were tokenized with
    tokenizer.save_pretrained(output_dir)
    return accuracies
