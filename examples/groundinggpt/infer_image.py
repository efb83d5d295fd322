"""Grounded description / referring expressions on an image with a converted GroundingGPT: boxes in pixels, drawn.

    python examples/groundinggpt/infer_image.py groundinggpt-7b-hf dog.jpg \
        --query "Please provide the bounding box coordinate of the region this sentence describes: the dog." \
        --output dog-boxes.png
"""

from example_utils import ask, load, parse_args, print_answer
from PIL import Image

from transformers_groma.processing.groundinggpt import draw_grounded_boxes


def main() -> None:
    query = "Please describe the image and include the object positions in [x0, y0, x1, y1] format."
    args = parse_args(__doc__, ["image"], query, output="grounded.png")
    model, processor = load(args.model_dir)
    image = Image.open(args.image).convert("RGB")
    result, _ = ask(model, processor, args.query, args.max_new_tokens, images=image)
    print_answer(result)
    draw_grounded_boxes(image, result["boxes"]).save(args.output)


if __name__ == "__main__":
    main()
