"""`groma-train`: the vision-language stages of Groma (spec §6.1).

```bash
groma-train examples/stage2_align.yaml        # --stage align: alignment pretraining (`default` template)
groma-train examples/stage3_finetune.yaml     # --stage finetune: instruction finetuning (`llava` template)
groma-train --stage custom --model_name_or_path groma-7b-finetune --train_file my_data.jsonl --image_dir images \
    --output_dir runs/my-groma                # your own data, see `sources.CustomJsonlAdapter`
```
"""

from dataclasses import dataclass
from functools import partial

from transformers import set_seed

from .arguments import DataArguments, GromaTrainingArguments, ModelArguments, parse_arguments
from .collator import GromaDataCollator
from .data_config import DataSource, load_data_config
from .mixture import build_conversation_mixture
from .model_setup import apply_lora, build_vl_model, configure_vl_trainable, log_trainable_parameters
from .trainer import GromaTrainer, end_distributed_run, setup_logging, train_and_save


@dataclass(frozen=True)
class StageRecipe:
    """What a stage does by default: its conversation template and what stays frozen."""

    template: str
    freeze_llm: bool
    train_new_token_rows_only: bool


STAGE_RECIPES = {
    "align": StageRecipe(template="default", freeze_llm=True, train_new_token_rows_only=True),
    "finetune": StageRecipe(template="llava", freeze_llm=False, train_new_token_rows_only=False),
    "custom": StageRecipe(template="llava", freeze_llm=False, train_new_token_rows_only=False),
}


def run(argv: list[str] | None = None) -> dict[str, float]:
    """Run a vision-language stage; `argv` defaults to the command line. Returns the train (and eval) metrics."""
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, DataArguments, GromaTrainingArguments), argv
    )
    setup_logging(training_args)
    set_seed(training_args.seed)

    recipe = STAGE_RECIPES[model_args.stage]
    freeze_llm = recipe.freeze_llm if model_args.freeze_llm is None else model_args.freeze_llm
    new_rows_only = (
        recipe.train_new_token_rows_only
        if model_args.train_new_token_rows_only is None
        else model_args.train_new_token_rows_only
    )
    if new_rows_only and training_args.weight_decay:
        raise ValueError(
            "`train_new_token_rows_only` keeps the base vocabulary's embedding rows fixed by zeroing their gradients, "
            f"but weight_decay={training_args.weight_decay} would still shrink them: use `--weight_decay 0` (the "
            "paper's stage-2 setting) or `--train_new_token_rows_only false`."
        )
    if model_args.lora_r and model_args.stage == "align":
        raise ValueError("LoRA adapts the LLM, which stage `align` keeps frozen; use it with `finetune` or `custom`.")

    model, processor = build_vl_model(model_args, data_args.model_max_length)
    configure_vl_trainable(model, freeze_llm, new_rows_only)
    if model_args.lora_r:
        model = apply_lora(model, model_args)
    log_trainable_parameters(model)

    build_mixture = partial(
        build_conversation_mixture,
        tokenizer=processor.tokenizer,
        image_processor=processor.image_processor,
        default_template=data_args.conversation_template or recipe.template,
        max_length=data_args.model_max_length,
        max_refer_boxes=model.config.max_region_num,
        seed=training_args.effective_data_seed,
        skip_bad_records=data_args.skip_bad_records,
    )
    if data_args.data_config:
        train_dataset = build_mixture(load_data_config(data_args.data_config))
    else:
        train_dataset = build_mixture([DataSource("custom", data_args.train_file, data_args.image_dir or "")])
    eval_dataset = None
    if data_args.validation_file:
        validation = DataSource("custom", data_args.validation_file, data_args.image_dir or "", name="validation")
        eval_dataset = build_mixture([validation])

    trainer = GromaTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=GromaDataCollator(processor.tokenizer.pad_token_id, padding_free=training_args.padding_free),
        processing_class=processor,
    )
    return train_and_save(
        trainer,
        finetuned_from=model_args.model_name_or_path or model_args.llm_path,
        merge_adapters=bool(model_args.lora_r) and model_args.merge_lora,
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point: `run` without a return value, so the script exits with status 0 (metrics are saved in
    the output folder)."""
    run(argv)
    end_distributed_run()


if __name__ == "__main__":
    main()
