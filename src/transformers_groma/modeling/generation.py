"""Generation plumbing shared by the multimodal heads (Groma, GroundingGPT).

Both encode their media once into prompt embeddings and generate from the prepared prompt ids, reading the prompt's
embeddings (media included) from `multimodal_prompt_embeds` whenever a forward covers prompt positions: the prefill
with a cache, every step without one (`use_cache=False`), a restart from part of a cache. Steps after the prompt feed
the new token ids. `generate` hands back the caller's prompt followed by the new tokens, so
`sequences[:, input_ids.shape[1]:]` are the generated tokens as with any LM.
"""

import torch
from torch import nn
from transformers import GenerationMixin


def placeholder_ids_from_embeds(
    embedding: nn.Module, inputs_embeds: torch.Tensor, token_ids: list[int]
) -> torch.LongTensor:
    """(B, L) ids standing in for prompts given only as `inputs_embeds`: the placeholder tokens `token_ids` where the
    embedding (by the `embedding` layer) is exactly theirs, as transformers' VLMs find their image tokens; 0 elsewhere."""
    ids = torch.zeros(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
    table = embedding(torch.tensor(token_ids, device=inputs_embeds.device))
    for token_id, row in zip(token_ids, table):
        ids = ids.masked_fill((inputs_embeds == row.to(inputs_embeds.dtype)).all(-1), token_id)
    return ids


class MultimodalGenerationMixin(GenerationMixin):
    """`GenerationMixin` for heads with `lm_head` whose `generate` first builds the prompt embeddings."""

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Module):
        self.lm_head = new_embeddings

    def generate_from_embeddings(
        self,
        caller_input_ids: torch.LongTensor,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor,
        inputs_embeds: torch.Tensor,
        **kwargs,
    ) -> tuple[torch.Tensor | object, torch.LongTensor, int]:
        """Generate from prepared prompt embeddings.

        Args:
            caller_input_ids: (B, T) the prompts as the caller gave them.
            input_ids / attention_mask / inputs_embeds: (B, L[, D]) the prepared, left-padded prompts.

        Returns:
            `GenerationMixin.generate`'s output, the sequences (B * copies, T + new) made of the caller's prompts and
            the new tokens, and `copies`, the sequences returned per prompt (`num_return_sequences`).
        """
        outputs = GenerationMixin.generate(
            self, input_ids=input_ids, attention_mask=attention_mask, multimodal_prompt_embeds=inputs_embeds, **kwargs
        )
        sequences = outputs if isinstance(outputs, torch.Tensor) else outputs.sequences
        copies = sequences.shape[0] // caller_input_ids.shape[0]
        prompts = caller_input_ids.repeat_interleave(copies, dim=0)
        return outputs, torch.cat([prompts, sequences[:, input_ids.shape[1] :]], dim=1), copies

    def is_prepared_generate_call(self, kwargs: dict) -> bool:
        """Whether `generate` was called with a prompt prepared already (`multimodal_prompt_embeds`): the assistant's
        calls in assisted decoding, which go straight to `GenerationMixin.generate`."""
        return kwargs.get("multimodal_prompt_embeds") is not None

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        multimodal_prompt_embeds: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> dict:
        """`GenerationMixin.prepare_inputs_for_generation`, feeding the prompt's multimodal embeddings.

        Args:
            input_ids: (B, S) the whole sequence so far: prepared prompt (length P) and new tokens.
            multimodal_prompt_embeds: (B, P, D) the prompt's embeddings with the media features in place.

        When the step's input reaches back into the prompt (it starts at position `S - n < P`), it is fed as
        `inputs_embeds`: the prompt embeddings from there on, then the embeddings of the new tokens.
        """
        model_inputs = super().prepare_inputs_for_generation(input_ids, inputs_embeds=inputs_embeds, **kwargs)
        step_ids = model_inputs.get("input_ids")
        if multimodal_prompt_embeds is None or step_ids is None:
            return model_inputs
        prompt_length = multimodal_prompt_embeds.shape[1]
        start = input_ids.shape[1] - step_ids.shape[1]
        if start < prompt_length:
            new_tokens = self.get_input_embeddings()(input_ids[:, prompt_length:])
            embeds = torch.cat([multimodal_prompt_embeds[:, start:].to(new_tokens.dtype), new_tokens], dim=1)
            model_inputs["input_ids"] = None
            model_inputs["inputs_embeds"] = embeds.contiguous()
        return model_inputs
