"""Forcing a generation: tiny random models never write grounding markup on their own."""

import torch
from transformers import LogitsProcessor


class ForceTokens(LogitsProcessor):
    """Makes generation write `token_ids`, one per step, after a prompt of `prompt_length` tokens (by default the
    length `input_ids` has at the first step)."""

    def __init__(self, token_ids: list[int], prompt_length: int | None = None):
        self.token_ids, self.prompt_length = token_ids, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prompt_length is None:
            self.prompt_length = input_ids.shape[1]
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.token_ids[input_ids.shape[1] - self.prompt_length]] = 0
        return forced
