"""Generation plumbing shared by the multimodal heads (Groma, GroundingGPT).

Both encode their media once into prompt embeddings, generate from those embeddings, and hand back the caller's
prompt followed by the new tokens, so `sequences[:, input_ids.shape[1]:]` are the generated tokens as with any LM.
"""

import torch
from torch import nn
from transformers import GenerationMixin


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
            self, input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
        )
        sequences = outputs if isinstance(outputs, torch.Tensor) else outputs.sequences
        copies = sequences.shape[0] // caller_input_ids.shape[0]
        prompts = caller_input_ids.repeat_interleave(copies, dim=0)
        return outputs, torch.cat([prompts, sequences[:, input_ids.shape[1] :]], dim=1), copies

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        inputs_embeds: torch.Tensor | None = None,
        is_first_iteration: bool = False,
        **kwargs,
    ) -> dict:
        """`GenerationMixin.prepare_inputs_for_generation`, keeping the multimodal prompt embeddings when no cache
        is used."""
        model_inputs = super().prepare_inputs_for_generation(
            input_ids, inputs_embeds=inputs_embeds, is_first_iteration=is_first_iteration, **kwargs
        )
        if inputs_embeds is not None and not is_first_iteration and not kwargs.get("use_cache", True):
            # Without a cache every step re-reads the whole sequence: the prompt keeps its multimodal embeddings.
            new_tokens = model_inputs.pop("input_ids")[:, inputs_embeds.shape[1] :]
            model_inputs["inputs_embeds"] = torch.cat([inputs_embeds, self.get_input_embeddings()(new_tokens)], dim=1)
        return model_inputs
