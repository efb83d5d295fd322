"""Audio captioning with a converted GroundingGPT (PCM WAV; other formats need `pip install soundfile`).

python examples/groundinggpt/infer_audio.py groundinggpt-7b-hf dog.wav --query "What can you hear in this audio?"
"""

from example_utils import ask, load, parse_args, print_answer


def main() -> None:
    args = parse_args(__doc__, ["audio"], "What can you hear in this audio?")
    model, processor = load(args.model_dir)
    result, _ = ask(model, processor, args.query, args.max_new_tokens, audio=args.audio)
    print_answer(result)


if __name__ == "__main__":
    main()
