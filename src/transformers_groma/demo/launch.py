"""`groma demo`: loading the models before the page starts (its options are parsed by `transformers_groma_cli`).
Gradio is imported only when the demo starts."""

import argparse
import os

from ..cli import device_and_dtype, load_model_and_processor, read_model_type


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
    device, dtype = device_and_dtype(args)
    models = {family: load_model_and_processor(source, device, dtype) for family, source in sources.items()}
    demo = build_demo(groma=models.get("groma"), groundinggpt=models.get("groundinggpt"))
    demo.queue().launch(server_name=args.host, server_port=args.port, share=args.share)
