"""The Vicuna tokenizer with GroundingGPT's 9 multimodal tokens, tokenizing like the released model's inference."""

import json
import os
from pathlib import Path

from tokenizers import AddedToken
from transformers import LlamaTokenizer, PreTrainedTokenizerBase

from ...configuration_groundinggpt import GROUNDINGGPT_TOKENS
from ..tokenization import record_legacy_flag


def add_groundinggpt_tokens(tokenizer: PreTrainedTokenizerBase) -> int:
    """Registers the 9 GroundingGPT tokens on `tokenizer` (in place) and makes `<unk>` its padding token.

    The tokens are added in the original order (`<im_patch>`, `<im_start>`, `<im_end>`, `<vi_patch>`, ...), so on a
    fresh Vicuna vocabulary they get the ids 32000 ... 32008. Tokens that already exist keep their id and only get
    their flags reset to `AddedToken(lstrip=False, rstrip=False, normalized=False, special=True)`:

    - no stripping: the released inference path (`AutoTokenizer` + re-adding the tokens, which resets the flags
      transformers 4.34.0 saved as `True`) keeps the whitespace around the tokens, e.g. `<im_end>` + `"\\n"` gives
      `<im_end>`, `▁`, `<0x0A>` (fixture README §5);
    - `special=True`: `decode(..., skip_special_tokens=True)` drops them.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): The tokenizer to extend.

    Returns:
        `int`: The number of tokens that were not in the vocabulary before.
    """
    vocab_size_before = len(tokenizer)
    tokenizer.add_tokens(
        [
            AddedToken(token, lstrip=False, rstrip=False, normalized=False, special=True)
            for token in GROUNDINGGPT_TOKENS
        ],
        special_tokens=True,
    )
    tokenizer.pad_token = tokenizer.unk_token
    return len(tokenizer) - vocab_size_before


def load_original_groundinggpt_tokenizer(path: str | os.PathLike, legacy: bool | None = None) -> LlamaTokenizer:
    """A fast [`~transformers.LlamaTokenizer`] that gives the ids the released GroundingGPT sees at inference.

    Reads the SentencePiece `tokenizer.model` of an original checkpoint folder and re-adds the 9 tokens with
    [`add_groundinggpt_tokens`]. The `legacy` flag (the text after an added token starts a new SentencePiece chunk
    with its own `▁`) is what transformers 4.34 used: the file's value, with `null` or a missing key meaning `True`
    (transformers 5.x would read those as `False`). The resolved flag is stored in `init_kwargs`, so a saved copy
    reloads with the same behaviour.

    Args:
        path (`str` or `os.PathLike`): Folder with `tokenizer.model` and `tokenizer_config.json`.
        legacy (`bool`, *optional*): Overrides the resolved `legacy` flag.

    Returns:
        [`~transformers.LlamaTokenizer`]: The tokenizer (BOS added, no EOS, `<unk>` as padding token).
    """
    if legacy is None:
        config_file = Path(path) / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        legacy = config.get("legacy") is not False
    tokenizer = LlamaTokenizer.from_pretrained(path, legacy=legacy, add_prefix_space=True)
    record_legacy_flag(tokenizer)
    add_groundinggpt_tokens(tokenizer)
    return tokenizer


__all__ = ["add_groundinggpt_tokens", "load_original_groundinggpt_tokenizer"]
