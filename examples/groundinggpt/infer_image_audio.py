"""Sound localisation with a converted GroundingGPT: where in the image the sound comes from, as pixel boxes drawn
on the image.

    python examples/groundinggpt/infer_image_audio.py groundinggpt-7b-hf street.jpg bark.wav --output bark.png
"""

from example_utils import ask, load, parse_args, print_answer
from PIL import Image

from transformers_groma.processing.groundinggpt import draw_grounded_boxes


def main() -> None:
    query = (
        "Where is the sound's point of emission in this image? "
        "Include the object positions in [x0, y0, x1, y1] format."
    )
    args = parse_args(__doc__, ["image", "audio"], query, output="sound-source.png")
    model, processor = load(args.model_dir)
    image = Image.open(args.image).convert("RGB")
    result, _ = ask(model, processor, args.query, args.max_new_tokens, images=image, audio=args.audio)
    print_answer(result)
    draw_grounded_boxes(image, result["boxes"]).save(args.output)


if __name__ == "__main__":
    main()
