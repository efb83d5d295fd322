"""`groma-train-groundinggpt`: instruction tuning of GroundingGPT (stages 2-3 of the original, `scripts/finetune.sh`)
on data in the original format (spec §6.3, see `groundinggpt.records`).

```bash
groma-train-groundinggpt examples/groundinggpt/instruction.yaml
groma-train-groundinggpt --model_name_or_path groundinggpt-7b-hf --data_path refcoco.json,charades_sta.json \
    --image_folder data/images --video_folder data/videos --sound_folder data/sounds --output_dir runs/my-gg
python examples/groundinggpt/make_toy_data.py toy-gg  # then, offline with a tiny random model:
groma-train-groundinggpt --init_from_tiny --data_path toy-gg/train.json --image_folder toy-gg/images \
    --video_folder toy-gg/videos --sound_folder toy-gg/sounds --output_dir runs/toy-gg --use_cpu true
groma-train-groundinggpt ... --lora_r 16   # LoRA on the LLM; the projections to the LLM train in full
```
"""

from functools import partial

from transformers import set_seed

from .arguments import parse_arguments
from .groundinggpt import (
    GroundingGPTDataArguments,
    GroundingGPTDataCollator,
    GroundingGPTModelArguments,
    GroundingGPTTrainingArguments,
    build_groundinggpt_mixture,
    build_groundinggpt_model,
    configure_groundinggpt_trainable,
)
from .groundinggpt.model_setup import LORA_MODULES_TO_SAVE
from .model_setup import apply_lora, log_trainable_parameters
from .trainer import GromaTrainer, end_distributed_run, setup_logging, train_and_save


def main(argv: list[str] | None = None) -> None:
    """Run the instruction stage; `argv` defaults to the command line.

    The metrics are logged and saved in the output folder (`train_results.json`, and `eval_results.json` with a
    validation set). Nothing is returned, so that the console script exits with status 0.
    """
    model_args, data_args, training_args = parse_arguments(
        (GroundingGPTModelArguments, GroundingGPTDataArguments, GroundingGPTTrainingArguments), argv
    )
    if training_args.padding_free:
        raise ValueError("`padding_free` is implemented for Groma only; GroundingGPT trains on padded batches.")
    setup_logging(training_args)
    set_seed(training_args.seed)

    model, processor = build_groundinggpt_model(model_args, data_args.model_max_length)
    configure_groundinggpt_trainable(model)
    if model_args.lora_r:
        model = apply_lora(model, model_args, LORA_MODULES_TO_SAVE)
    log_trainable_parameters(model)

    build_mixture = partial(
        build_groundinggpt_mixture, processor=processor, data_args=data_args, seed=training_args.effective_data_seed
    )
    train_dataset = build_mixture(data_args.data_path)
    eval_dataset = build_mixture(data_args.validation_data_path) if data_args.validation_data_path else None
    trainer = GromaTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=GroundingGPTDataCollator(processor.tokenizer.pad_token_id),
        processing_class=processor,
    )
    train_and_save(trainer, finetuned_from=model_args.model_name_or_path)
    end_distributed_run()


if __name__ == "__main__":
    main()
