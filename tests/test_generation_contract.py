"""`generate` of both models against transformers' generation contract (what GenerationTesterMixin checks for
built-in VLMs): greedy decoding equals a reference that re-runs the full forward every step, with a cache, without
one, from a returned cache, with assisted and prompt-lookup decoding, with a static cache and compiled; dict outputs;
`inputs_embeds`; media tokens in the continuation; no deprecation warning from the models."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from transformers import CompileConfig
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from transformers_groma.modeling.cache_api import cache_kwargs, output_cache

from .forcing import ForceTokens
from .groundinggpt import conftest as gg
from .modeling import groma_test_utils as groma


NEW_TOKENS = 5


@dataclass
class Case:
    """One model with two multimodal prompts (batched: left-padded), and the full-forward greedy reference.

    The media placeholder tokens are suppressed in the compared generations (a whole-sequence forward rejects
    placeholders without their media); `test_media_tokens_in_the_continuation_are_text` forces them instead.
    """

    name: str
    model: torch.nn.Module
    prompts: list[torch.Tensor]
    media: list[dict]  # per prompt
    media_tokens: list[int]
    pad: Callable

    def batch(self, indices: list[int] | None = None) -> dict:
        """`generate` inputs of the prompts at `indices` (all by default): ids, attention mask and media."""
        indices = range(len(self.prompts)) if indices is None else indices
        ids, mask = self.pad([self.prompts[i] for i in indices], "left")
        names = {name for i in indices for name in self.media[i]}
        media = {name: [item for i in indices for item in self.media[i].get(name, [])] for name in names}
        media = {name: items if name == "region_boxes" else torch.stack(items) for name, items in media.items()}
        return {"input_ids": ids, "attention_mask": mask, **media}

    def full_forward_logits(self, inputs: dict) -> torch.Tensor:
        """(B, vocab) next-token logits of the whole sequences run again from scratch, without a cache."""
        with torch.no_grad():
            if self.name == "groma":
                out = self.model(**inputs, use_cache=False)
                last = out.expanded_attention_mask.sum(-1) - 1  # the expanded batch is padded on the right
                logits = out.logits[torch.arange(len(last)), last]
            else:
                positions = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                logits = self.model(**inputs, position_ids=positions, use_cache=False).logits[:, -1]
        logits[:, self.media_tokens] = float("-inf")
        return logits

    def reference(self, steps: int = NEW_TOKENS) -> torch.Tensor:
        inputs = self.batch()
        for _ in range(steps):
            next_tokens = self.full_forward_logits(inputs).argmax(-1)
            inputs["input_ids"] = torch.cat([inputs["input_ids"], next_tokens[:, None]], dim=1)
            inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(next_tokens)[:, None]], 1)
        return inputs["input_ids"]


def groma_case() -> Case:
    model = groma.make_model(seed=0, box_score_threshold=0.0)
    groma.perturb_parameters(model, std=0.05)
    prompts = [groma.make_prompt(2, 2, 3), groma.make_prompt(5, 1, 2, seed=4)]
    media = [
        {"pixel_values": [groma.pixels(2)[i]], "region_boxes": [boxes]}
        for i, boxes in enumerate([groma.GRID[:3], groma.GRID[1:]])
    ]
    tokens = [groma.IMAGE, groma.REGION, groma.REFER_BOX, groma.GROUND_BOX, groma.REFER_FEAT, groma.R0]
    return Case("groma", model, prompts, media, tokens, groma.pad_batch)


def groundinggpt_case() -> Case:
    model = gg.make_model()
    groma.perturb_parameters(model, std=0.05)
    prompts = [gg.prompt("image", length=6, seed=1), gg.prompt("audio", "video", seed=3)]
    media = [
        {"pixel_values": [gg.media("image", seed=1)[0]]},
        {"pixel_values_videos": [gg.media("video", seed=3)[0]], "input_features": [gg.media("audio", seed=3)[0]]},
    ]
    tokens = [gg.IMAGE, gg.IMAGE_START, gg.IMAGE_END, gg.VIDEO, gg.VIDEO_START, gg.VIDEO_END]
    tokens += [gg.AUDIO, gg.AUDIO_START, gg.AUDIO_END]
    return Case("groundinggpt", model, prompts, media, tokens, gg.pad_batch)


@pytest.fixture(scope="module", params=["groma", "groundinggpt"])
def case(request) -> Case:
    return {"groma": groma_case, "groundinggpt": groundinggpt_case}[request.param]()


def greedy(case: Case, indices: list[int] | None = None, **kwargs):
    kwargs.setdefault("max_new_tokens", NEW_TOKENS)
    kwargs.setdefault("suppress_tokens", case.media_tokens)
    return case.model.generate(**case.batch(indices), do_sample=False, pad_token_id=0, **kwargs)


@pytest.fixture(scope="module")
def reference(case) -> torch.Tensor:
    return case.reference()


def test_reference_is_not_trivial(case, reference):
    new_tokens = reference[:, -NEW_TOKENS:]
    assert len(set(new_tokens.flatten().tolist())) > 2  # the two samples generate different, varied tokens
    assert not torch.equal(new_tokens[0], new_tokens[1])


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generation_equals_the_full_forward_reference(case, reference, use_cache):
    lengths = []
    hook = case.model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(
            (kwargs["input_ids"] if kwargs.get("input_ids") is not None else kwargs["inputs_embeds"]).shape[1]
        ),
        with_kwargs=True,
    )
    try:
        assert torch.equal(greedy(case, use_cache=use_cache), reference)
    finally:
        hook.remove()
    if use_cache:
        assert lengths[1:] == [1] * (NEW_TOKENS - 1)  # decoding steps feed one token
    else:
        assert lengths == list(range(lengths[0], lengths[0] + NEW_TOKENS))  # every step re-reads everything


def test_dict_outputs_with_and_without_cache(case, reference):
    flags = {"return_dict_in_generate": True, "output_scores": True, "output_logits": True}
    flags |= {"output_hidden_states": True, "output_attentions": True}
    with_cache = greedy(case, **flags)
    without_cache = greedy(case, use_cache=False, **flags)
    for out in (with_cache, without_cache):
        assert torch.equal(out.sequences, reference)
        assert len(out.scores) == len(out.logits) == len(out.hidden_states) == len(out.attentions) == NEW_TOKENS
    assert output_cache(with_cache) is not None and output_cache(without_cache) is None
    for a, b in zip(with_cache.logits, without_cache.logits):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # the last step: one position with a cache, the whole sequence without
    assert with_cache.hidden_states[-1][-1].shape[1] == 1
    assert without_cache.hidden_states[-1][-1].shape[1] == without_cache.hidden_states[0][-1].shape[1] + NEW_TOKENS - 1


def test_generation_continues_from_a_returned_cache(case, reference):
    first = greedy(case, max_new_tokens=2, return_dict_in_generate=True)
    cache = output_cache(first)
    assert cache.get_seq_length() >= first.sequences.shape[1] - 1  # the (expanded) prompt and the first new token
    inputs = case.batch()
    inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(first.sequences[:, :2])], dim=1)
    inputs["input_ids"] = first.sequences
    rest = case.model.generate(
        **inputs, **cache_kwargs(cache), do_sample=False, pad_token_id=0, max_new_tokens=NEW_TOKENS - 2,
        suppress_tokens=case.media_tokens,
    )  # fmt: skip
    assert torch.equal(rest, reference)


@pytest.mark.parametrize("method", [{"assistant_model": "model"}, {"prompt_lookup_num_tokens": 2}])
def test_assisted_and_prompt_lookup_decoding_equal_greedy(case, reference, method):
    method = {key: case.model if value == "model" else value for key, value in method.items()}
    for index, prompt in enumerate(case.prompts):  # transformers runs them on one prompt at a time
        out = greedy(case, [index], **method)
        assert torch.equal(out[0, len(prompt) :], reference[index, -NEW_TOKENS:])


def test_static_cache_equals_greedy(case, reference):
    assert torch.equal(greedy(case, cache_implementation="static"), reference)


def test_compiled_static_cache_decoding_equals_greedy(case, reference):
    assert case.model._can_compile_fullgraph
    compile_config = CompileConfig(fullgraph=True, backend="eager", dynamic=False)
    compile_config._compile_all_devices = True  # transformers compiles on accelerators only by default
    out = greedy(case, cache_implementation="static", compile_config=compile_config)
    assert torch.equal(out, reference)


def test_media_tokens_in_the_continuation_are_text(case):
    """Forcing the model to write its own placeholder tokens: decoding treats them as text, with a cache exactly as
    without one (which re-reads them every step), and prints no deprecation warning."""
    forced = case.media_tokens[:4]
    logger = logging.get_logger("transformers")
    logging.set_verbosity_warning()
    logging.warning_once.cache_clear()  # warnings already printed in this process would be silenced
    outputs = []
    with CaptureLogger(logger) as captured:
        for use_cache in (True, False):
            outputs.append(
                greedy(
                    case,
                    use_cache=use_cache,
                    max_new_tokens=len(forced) + 1,
                    logits_processor=[ForceTokens([*forced, forced[0]])],
                    suppress_tokens=None,
                    return_dict_in_generate=True,
                    output_logits=True,
                )
            )
    assert "deprecated" not in captured.out
    with_cache, without_cache = outputs
    assert with_cache.sequences[:, -len(forced) - 1 : -1].tolist() == [forced] * len(case.prompts)
    for a, b in zip(with_cache.logits, without_cache.logits):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_text_only_inputs_embeds_generation_equals_input_ids(case):
    ids = torch.tensor([[1, 5, 9, 17, 33, 4]])
    embeds = case.model.get_input_embeddings()(ids)
    from_ids = case.model.generate(input_ids=ids, do_sample=False, max_new_tokens=4, pad_token_id=0)
    from_embeds = case.model.generate(inputs_embeds=embeds, do_sample=False, max_new_tokens=4, pad_token_id=0)
    assert torch.equal(from_embeds, from_ids[:, ids.shape[1] :])
    both = case.model.generate(input_ids=ids, inputs_embeds=embeds, do_sample=False, max_new_tokens=4, pad_token_id=0)
    assert torch.equal(both, from_ids)


def test_multimodal_inputs_embeds_generation_equals_input_ids(case, reference):
    inputs = case.batch()
    ids = inputs.pop("input_ids")
    embeds = case.model.get_input_embeddings()(ids)
    kwargs = {
        "do_sample": False,
        "pad_token_id": 0,
        "max_new_tokens": NEW_TOKENS,
        "suppress_tokens": case.media_tokens,
    }
    both = case.model.generate(input_ids=ids, inputs_embeds=embeds, **inputs, **kwargs)
    assert torch.equal(both, reference)
    embeds_only = case.model.generate(inputs_embeds=embeds, **inputs, **kwargs)
    assert torch.equal(embeds_only, reference[:, -NEW_TOKENS:])
    # the caller's embeddings are the ones used for the text tokens
    changed = case.model.generate(input_ids=ids, inputs_embeds=embeds * 3, **inputs, **kwargs)
    assert not torch.equal(changed, reference)
