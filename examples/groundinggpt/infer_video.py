"""Temporal grounding in a video with a converted GroundingGPT: time spans in seconds, drawn on a timeline
(needs PyAV: `pip install "transformers-groma[video]"`).

    python examples/groundinggpt/infer_video.py groundinggpt-7b-hf clip.mp4 \
        --query "When does the man open the door?" --output clip-timeline.png
"""

from example_utils import ask, load, parse_args, print_answer

from transformers_groma.processing.groundinggpt import draw_time_spans


def main() -> None:
    args = parse_args(__doc__, ["video"], "Describe this video.", output="timeline.png")
    model, processor = load(args.model_dir)
    result, inputs = ask(model, processor, args.query, args.max_new_tokens, videos=args.video)
    print_answer(result)
    draw_time_spans(inputs["video_durations"][0].item(), result["time_spans"]).save(args.output)


if __name__ == "__main__":
    main()
