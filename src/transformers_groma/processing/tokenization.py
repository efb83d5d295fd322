"""Groma's extended Llama vocabulary and the loader for original (transformers 4.32) Groma tokenizer folders."""

import json
import numbers
import os
from collections.abc import Sequence

import numpy as np
import torch
from tokenizers import AddedToken
from transformers import LlamaTokenizer, PreTrainedTokenizerBase

from ..tokens import GROMA_ADDED_TOKENS, IGNORE_INDEX, PAD_TOKEN


def add_groma_tokens(tokenizer: PreTrainedTokenizerBase) -> int:
    """Registers Groma's 114 added tokens (spec §1.8.1) on `tokenizer` and makes `[PAD]` its padding token.

    The tokens are added in the original order (`[PAD]`, `<sep>`, ..., `<r0>` ... `<r99>`), so on a fresh Llama
    vocabulary of size `V` they get the ids `V` ... `V + 113`. Tokens that already exist keep their id and only have
    their flags updated. Every token is an `AddedToken(lstrip=True, rstrip=True, normalized=False, special=True)`:

    - `lstrip`/`rstrip` reproduce the original slow tokenizer, which stripped the whitespace on both sides of the
      tokens it added as plain strings;
    - `special=True` makes `decode(..., skip_special_tokens=True)` drop them, while `skip_special_tokens=False`
      keeps them for [`~transformers_groma.processing.parse_grounded_text`].

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            The tokenizer to extend, modified in place.

    Returns:
        `int`: The number of tokens that were not in the vocabulary before.
    """
    added_tokens = [
        AddedToken(token, lstrip=True, rstrip=True, normalized=False, special=True) for token in GROMA_ADDED_TOKENS
    ]
    vocab_size_before = len(tokenizer)
    tokenizer.add_tokens(added_tokens, special_tokens=True)
    tokenizer.pad_token = PAD_TOKEN
    return len(tokenizer) - vocab_size_before


def record_legacy_flag(tokenizer: PreTrainedTokenizerBase | None) -> None:
    """Stores a Llama tokenizer's `legacy` flag in its `init_kwargs`, so that `save_pretrained` writes it.

    `LlamaTokenizer` reads `legacy` (where the SentencePiece prefix `▁` goes after an added token) but does not keep it
    among the values it saves; a save/load round trip would turn `legacy=True` into the default `False` and change
    the ids of the word after every Groma token (`<p>the` -> `t`, `he`). Tokenizers without the flag are left alone.
    """
    legacy = getattr(tokenizer, "legacy", None)
    if legacy is not None:
        tokenizer.init_kwargs["legacy"] = legacy


def load_original_tokenizer(path: str | os.PathLike, legacy: bool | None = None) -> LlamaTokenizer:
    """Builds a fast [`~transformers.LlamaTokenizer`] that reproduces an original Groma tokenizer folder id for id.

    The original folder holds a SentencePiece `tokenizer.model`, a `tokenizer_config.json` and an `added_tokens.json`
    written by transformers 4.32's slow `LlamaTokenizer` (BOS added, no EOS). Loading it as is with transformers 5.x
    gives different ids around the Groma tokens; this function fixes the two causes:

    - the 114 Groma tokens are re-registered with [`add_groma_tokens`] (whitespace stripped on both sides);
    - the `legacy` flag decides where the SentencePiece prefix `▁` goes. transformers 4.32 read `legacy: null` (or a
      missing key) as `True`: every text chunk, including the one right after an added token, gets a `▁`
      (Metaspace pre-tokenizer with prepend scheme `"always"`). `legacy: false` only prefixes the start of the text
      (prepend scheme `"first"`), so the word after an added token has no `▁`. transformers 5.x reads `null` as
      `False`, hence the explicit resolution here.

    The resolved flag is stored in `init_kwargs`, so `save_pretrained` writes it and `AutoTokenizer.from_pretrained`
    rebuilds the same pre-tokenizer.

    Known differences with the slow tokenizer (never produced by Groma's prompt format): text that starts with
    whitespace or contains a literal `▁`, a space before `</s>`/`<s>`/`<unk>` followed by text (`legacy=True`), and
    text that starts with an added token (`legacy=False`) can give one `▁` token fewer.

    Args:
        path (`str` or `os.PathLike`):
            Folder of the original tokenizer (`tokenizer.model`, `tokenizer_config.json`, `added_tokens.json`).
        legacy (`bool`, *optional*):
            Overrides the `legacy` value of `tokenizer_config.json`. When `None`, the file's value is used, and a
            `null` or missing value means `True` (as in transformers 4.32).

    Returns:
        [`~transformers.LlamaTokenizer`]: The tokenizer, with `[PAD]` as padding token.
    """
    if legacy is None:
        config_file = os.path.join(path, "tokenizer_config.json")
        config = {}
        if os.path.isfile(config_file):
            with open(config_file, encoding="utf-8") as handle:
                config = json.load(handle)
        legacy = config.get("legacy")
        legacy = True if legacy is None else bool(legacy)

    tokenizer = LlamaTokenizer.from_pretrained(path, legacy=legacy, add_prefix_space=True)
    record_legacy_flag(tokenizer)
    add_groma_tokens(tokenizer)
    return tokenizer


__all__ = ["add_groma_tokens", "load_original_tokenizer", "record_legacy_flag"]


def generated_id_lists(
    generated_ids: torch.Tensor | Sequence[Sequence[int]], vocab_size: int | None = None
) -> list[list[int]]:
    """`generated_ids` as one list of token ids per sample, without the `-100` entries of label-style padding.

    Raises `ValueError` for ids that are not integers in `[0, vocab_size)` (the tokenizer would decode them to
    nothing)."""
    if isinstance(generated_ids, str) or not isinstance(generated_ids, (Sequence, torch.Tensor, np.ndarray)):
        raise TypeError(
            f"`generated_ids` must hold one sequence of token ids per sample, got {type(generated_ids).__name__}."
        )
    id_lists = []
    for index, row in enumerate(generated_ids):
        ids = row.tolist() if isinstance(row, (torch.Tensor, np.ndarray)) else row
        if isinstance(ids, str) or not isinstance(ids, Sequence):
            raise TypeError(
                "`generated_ids` must be a `(batch_size, num_new_tokens)` tensor or one list of token ids per sample, "
                f"got {type(ids).__name__} for `generated_ids[{index}]` (add a batch dimension to a single sample)."
            )
        ids = [token_id for token_id in ids if token_id != IGNORE_INDEX]
        upper = float("inf") if vocab_size is None else vocab_size
        invalid = [
            token_id
            for token_id in ids
            if not isinstance(token_id, numbers.Integral) or isinstance(token_id, bool) or not 0 <= token_id < upper
        ]
        if invalid:
            raise ValueError(
                f"`generated_ids[{index}]` must hold token ids (integers in [0, {upper}), or {IGNORE_INDEX} for "
                f"padding), got {invalid[:5]}."
            )
        id_lists.append(ids)
    return id_lists
