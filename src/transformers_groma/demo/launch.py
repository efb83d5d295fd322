"""`groma demo`: its options, and loading the models before the page starts. Gradio is imported only when the demo
starts, so the rest of the `groma` command stays quick."""

import argparse
import os

import torch

from ..cli import load_model_and_processor, parse_device, read_model_type
from ..conversion.checkpoint_io import DTYPES


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    """Adds the `demo` command and its options to the `groma` sub-commands."""
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
    parser.add_argument("--device", type=parse_device, help="cpu, cuda, cuda:1, ... (default: cuda if available).")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="Default: bfloat16 on CUDA, else float32.")


def model_sources(args: argparse.Namespace) -> dict[str, argparse.Namespace]:
    """The `load_model_and_processor` options of each model family asked for, by family; exits with a message when
    none is given or a family is given twice."""
    sources: dict[str, list[argparse.Namespace]] = {"groma": [], "groundinggpt": []}
    if args.tiny:
        from ..synthetic import demo_model_path

        try:
            folder = str(demo_model_path())
        except FileNotFoundError as error:
            raise SystemExit(f"error: --tiny: {error}") from error
        sources["groma"].append(argparse.Namespace(model=folder, tiny=False, tiny_groundinggpt=False))
    if args.tiny_groundinggpt:
        sources["groundinggpt"].append(argparse.Namespace(model=None, tiny=False, tiny_groundinggpt=True))
    for folder in args.model:
        sources[read_model_type(folder)].append(argparse.Namespace(model=folder, tiny=False, tiny_groundinggpt=False))
    if not any(sources.values()):
        raise SystemExit("error: groma demo needs a model: --tiny, --model FOLDER or --tiny-groundinggpt.")
    for family, given in sources.items():
        if len(given) > 1:
            raise SystemExit(f"error: groma demo shows one {family} model; got {len(given)}.")
    return {family: given[0] for family, given in sources.items() if given}


def run_demo(args: argparse.Namespace) -> None:
    """Loads the models of `args` and serves the demo page until interrupted."""
    sources = model_sources(args)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no usage reports from an offline demo
    try:
        from .app import build_demo
    except ImportError as error:
        raise SystemExit(
            f"error: groma demo needs Gradio ({error}); install it with: pip install 'transformers-groma[demo]'"
        ) from error
    device = args.device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype or ("bfloat16" if device.type == "cuda" else "float32")]
    models = {family: load_model_and_processor(source, device, dtype) for family, source in sources.items()}
    demo = build_demo(groma=models.get("groma"), groundinggpt=models.get("groundinggpt"))
    demo.queue().launch(server_name=args.host, server_port=args.port, share=args.share)
