"""The `groma` console script's front end: its argument parser, kept free of torch and transformers so that `--help`
and usage errors answer at once. The commands themselves run in `transformers_groma.cli` (predict) and
`transformers_groma.demo.launch` (demo), imported only once the arguments parse."""

import argparse


DESCRIPTION = (
    "`groma` command line: grounded answers about images (Groma), and about images, videos and audio (GroundingGPT)."
)
DTYPE_NAMES = ("bfloat16", "float16", "float32")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    if not text.strip().isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def parse_box(text: str) -> list[float]:
    """argparse type: `x1,y1,x2,y2` in pixels -> list of 4 floats."""
    values = text.split(",")
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"--box takes x1,y1,x2,y2 in pixels, got {text!r}")
    try:
        return [float(v) for v in values]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--box takes four numbers, got {text!r}") from error


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """`--device` (checked against the machine when the command runs) and `--dtype`."""
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available).")
    parser.add_argument("--dtype", choices=DTYPE_NAMES, help="Default: bfloat16 on CUDA, else float32.")


def add_predict_parser(commands: argparse._SubParsersAction) -> None:
    """The `predict` command and its options."""
    parser = commands.add_parser("predict", help="Answer questions about images, videos and audio.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="Folder of a converted (native) Groma or GroundingGPT checkpoint.")
    source.add_argument(
        "--tiny",
        action="store_true",
        help="Use the demo model shipped with the package (offline): a tiny Groma trained on a synthetic world of "
        "coloured squares, circles and triangles, not on real images.",
    )
    source.add_argument(
        "--tiny-groundinggpt", action="store_true", help="Use a tiny random GroundingGPT built in memory."
    )
    parser.add_argument("--image", action="append", help="Image file (repeat for several).")
    parser.add_argument("--video", action="append", help="Video file, GroundingGPT only (repeat for several).")
    parser.add_argument("--audio", action="append", help="Audio file, GroundingGPT only (repeat for several).")
    parser.add_argument("--query", action="append", help="Question or instruction (repeat for several).")
    parser.add_argument(
        "--box",
        action="append",
        type=parse_box,
        metavar="X1,Y1,X2,Y2",
        help="Groma: a pixel box the query refers to (repeat for several).",
    )
    parser.add_argument(
        "--describe_regions",
        action="store_true",
        help="Groma: describe every region the model finds (one region caption each, --query being the question "
        "asked about each region) instead of answering one question about the image.",
    )
    parser.add_argument(
        "--output", help="Save the annotated picture(s) here (PNG/JPEG); a timeline for GroundingGPT video answers."
    )
    parser.add_argument("--json", action="store_true", help="Print results as JSON.")
    parser.add_argument(
        "--max_new_tokens", type=positive_int, default=128, help="Most tokens to generate per answer (default: 128)."
    )
    parser.add_argument(
        "--batch_size", type=positive_int, default=4, help="Jobs run together in one generate call (default: 4)."
    )
    add_device_options(parser)


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    """The `demo` command and its options."""
    parser = commands.add_parser(
        "demo", help="Start the demo web page (Gradio; pip install 'transformers-groma[demo]')."
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="Folder of a converted Groma or GroundingGPT model (give one of each to fill both tabs).",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="Use the small Groma trained on synthetic shapes that ships with the package.",
    )
    parser.add_argument(
        "--tiny-groundinggpt", action="store_true", help="Use a tiny random GroundingGPT built in memory."
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"Address to serve on (default: {DEFAULT_HOST}).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"Port to serve on (default: {DEFAULT_PORT}).")
    parser.add_argument(
        "--share",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Also publish the page through a temporary public Gradio link (default: off).",
    )
    add_device_options(parser)


def build_parser() -> argparse.ArgumentParser:
    """The `groma` argument parser: the `predict` and `demo` commands and their options."""
    parser = argparse.ArgumentParser(prog="groma", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    add_predict_parser(commands)
    add_demo_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `groma` console script: parse the arguments, then run the command."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from transformers_groma.demo.launch import run_demo

        return run_demo(args)
    from transformers_groma.cli import predict_command

    return predict_command(args)


__all__ = ["build_parser", "main", "parse_box", "positive_int"]
