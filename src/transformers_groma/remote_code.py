"""Code files and `auto_map` entries that make a saved folder load with `trust_remote_code=True` where this package
is not installed.

transformers' remote-code loader imports the module an `auto_map` entry names from the folder, after copying it and
every module it imports with a one-dot relative import (`from .module import name`) into its module cache. This
module writes such a flat bundle: every package module the model family needs, each under its own file name, with
its imports of other package modules rewritten to one-dot relative imports. The bundle only needs torch,
torchvision, transformers, huggingface-hub, tokenizers, numpy and pillow; optional media libraries (PyAV) are
imported where they are used.
"""

import ast
import functools
import importlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .version import __version__


PACKAGE = __name__.rsplit(".", 1)[0]
PACKAGE_DIR = Path(__file__).resolve().parent
HEADER = f"# Generated from {PACKAGE} {__version__} for `trust_remote_code=True`; edit the package, not this copy.\n"

# The JSON files `save_pretrained` writes, and the `auto_map` keys each of them gets.
MODEL_CONFIG = "config.json"
PROCESSOR_CONFIG = "processor_config.json"
IMAGE_PROCESSOR_CONFIG = "preprocessor_config.json"
VIDEO_PROCESSOR_CONFIG = "video_preprocessor_config.json"


@dataclass(frozen=True)
class RemoteCodeFamily:
    """The classes a model family's folders name in `auto_map`, as `"module:Class"` paths inside the package.

    Attributes:
        models: Auto class name -> model or config class.
        processor: the processor class (`AutoProcessor`).
        sub_processors: attribute name in `processor_config.json` (and the standalone file it is saved to) -> (Auto
            class name, class).
    """

    models: dict[str, str]
    processor: str
    sub_processors: dict[str, tuple[str, str]]

    def classes(self) -> list[str]:
        return [*self.models.values(), self.processor, *(path for _, path in self.sub_processors.values())]


FAMILIES = {
    "groma": RemoteCodeFamily(
        models={
            "AutoConfig": "configuration_groma:GromaConfig",
            "AutoModel": "modeling.modeling_groma:GromaModel",
            "AutoModelForImageTextToText": "modeling.modeling_groma:GromaForConditionalGeneration",
            "AutoModelForMultimodalLM": "modeling.modeling_groma:GromaForConditionalGeneration",
            "AutoModelForObjectDetection": "modeling.modeling_groma:GromaForRegionProposal",
        },
        processor="processing.processing_groma:GromaProcessor",
        sub_processors={
            "image_processor": ("AutoImageProcessor", "processing.image_processing_groma:GromaImageProcessor")
        },
    ),
    "groundinggpt": RemoteCodeFamily(
        models={
            "AutoConfig": "configuration_groundinggpt:GroundingGPTConfig",
            "AutoModel": "modeling.groundinggpt.modeling_groundinggpt:GroundingGPTModel",
            "AutoModelForImageTextToText": "modeling.groundinggpt.modeling_groundinggpt:"
            "GroundingGPTForConditionalGeneration",
            "AutoModelForMultimodalLM": "modeling.groundinggpt.modeling_groundinggpt:"
            "GroundingGPTForConditionalGeneration",
        },
        processor="processing.groundinggpt.processing_groundinggpt:GroundingGPTProcessor",
        sub_processors={
            "image_processor": (
                "AutoImageProcessor",
                "processing.groundinggpt.image_processing_groundinggpt:GroundingGPTImageProcessor",
            ),
            "video_processor": (
                "AutoVideoProcessor",
                "processing.groundinggpt.video_processing_groundinggpt:GroundingGPTVideoProcessor",
            ),
            "feature_extractor": (
                "AutoFeatureExtractor",
                "processing.groundinggpt.feature_extraction_groundinggpt:GroundingGPTFeatureExtractor",
            ),
        },
    ),
}


def _module_path(module: str) -> Path:
    return PACKAGE_DIR.joinpath(*module.split(".")).with_suffix(".py")


@functools.cache
def _module_name_counts() -> Counter:
    return Counter(path.stem for path in PACKAGE_DIR.rglob("*.py") if path.stem != "__init__")


def _flat_name(module: str) -> str:
    """The file stem of a package module in the bundle: its last name (`modeling.modeling_groma` -> `modeling_groma`),
    prefixed with its folder's name when another module of the package has the same name
    (`processing.groundinggpt.grounding` -> `groundinggpt_grounding`)."""
    parts = module.split(".")
    return parts[-1] if len(parts) == 1 or _module_name_counts()[parts[-1]] == 1 else "_".join(parts[-2:])


def _auto_map_entry(class_path: str) -> str:
    module, name = class_path.split(":")
    return f"{_flat_name(module)}.{name}"


def _package_import(node: ast.ImportFrom, module: str) -> str | None:
    """The package module (relative to the package) an import statement of `module` reads from, if any."""
    if node.level:
        base = module.split(".")[: -node.level]
        if len(base) < len(module.split(".")) - node.level:
            return None
        target = ".".join([*base, *([node.module] if node.module else [])])
    elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
        target = node.module.removeprefix(PACKAGE).lstrip(".")
    else:
        return None
    if not _module_path(target).is_file():
        raise ValueError(
            f"{PACKAGE}.{module} imports from {target or PACKAGE!r}, which is not a module file; the remote-code bundle "
            "needs imports of concrete modules (`from .module import name`)."
        )
    return target


def _rewrite(module: str) -> tuple[str, set[str]]:
    """The source of `module` with its package imports turned into one-dot imports, and the modules they name."""
    source = _module_path(module).read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    imported, replacements = set(), []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == PACKAGE for alias in node.names):
            raise ValueError(f"{PACKAGE}.{module} uses `import {PACKAGE}...`; use `from .module import name`.")
        if not isinstance(node, ast.ImportFrom) or (target := _package_import(node, module)) is None:
            continue
        imported.add(target)
        names = ", ".join(alias.name + (f" as {alias.asname}" if alias.asname else "") for alias in node.names)
        indent = " " * node.col_offset
        replacements.append((node.lineno, node.end_lineno, f"{indent}from .{_flat_name(target)} import {names}\n"))
    for start, end, line in sorted(replacements, reverse=True):
        lines[start - 1 : end] = [line]
    return HEADER + "".join(lines), imported


def bundle_sources(family: str) -> dict[str, str]:
    """File name -> source of every module the `family` ("groma" or "groundinggpt") needs, imports made flat.

    Raises:
        ValueError: for an unknown family, or two needed modules with the same file name.
    """
    if family not in FAMILIES:
        raise ValueError(f"`family` must be one of {sorted(FAMILIES)}, got {family!r}.")
    pending = [path.split(":")[0] for path in FAMILIES[family].classes()]
    sources, origins = {}, {}
    while pending:
        module = pending.pop()
        file_name = _flat_name(module) + ".py"
        if file_name in origins:
            if origins[file_name] != module:
                raise ValueError(f"{origins[file_name]} and {module} would both be bundled as {file_name}.")
            continue
        origins[file_name] = module
        sources[file_name], imported = _rewrite(module)
        pending.extend(imported)
    return dict(sorted(sources.items()))


@functools.cache
def remote_code_file_names() -> frozenset[str]:
    """The names of every code file `write_remote_code` may write (both families)."""
    return frozenset(name for family in FAMILIES for name in bundle_sources(family))


def _update_json(path: Path, update) -> None:
    if path.is_file():
        content = json.loads(path.read_text(encoding="utf-8"))
        update(content)
        path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _add_auto_map(content: dict, entries: dict[str, str]) -> None:
    content["auto_map"] = {**content.get("auto_map", {}), **entries}


def write_remote_code(folder: str | Path, family: str) -> list[str]:
    """Write the `family`'s code files into `folder` and add `auto_map` to the configs saved there.

    `config.json` gets the config and model classes, `processor_config.json` the processor (and, inside, every
    sub-processor its class), and the standalone `preprocessor_config.json` / `video_preprocessor_config.json` the
    image, video or feature processors they hold. Call it after the `save_pretrained` calls. Returns the names of the
    code files written.
    """
    folder = Path(folder)
    sources = bundle_sources(family)  # checks `family`
    spec = FAMILIES[family]
    for file_name, source in sources.items():
        (folder / file_name).write_text(source, encoding="utf-8")
    processor = {"AutoProcessor": _auto_map_entry(spec.processor)}
    _update_json(folder / MODEL_CONFIG, lambda config: _add_auto_map(config, _auto_maps(spec.models)))

    def update_processor_config(config: dict) -> None:
        _add_auto_map(config, processor)
        for attribute, (auto_class, class_path) in spec.sub_processors.items():
            if attribute in config:
                _add_auto_map(config[attribute], {auto_class: _auto_map_entry(class_path), **processor})

    _update_json(folder / PROCESSOR_CONFIG, update_processor_config)
    for file_name in (IMAGE_PROCESSOR_CONFIG, VIDEO_PROCESSOR_CONFIG):
        _update_json(folder / file_name, lambda config: _add_sub_processor_auto_map(config, spec))
    return list(sources)


def _auto_maps(classes: dict[str, str]) -> dict[str, str]:
    return {auto_class: _auto_map_entry(path) for auto_class, path in classes.items()}


def _add_sub_processor_auto_map(config: dict, spec: RemoteCodeFamily) -> None:
    """A standalone image / video / feature processor file: its class's Auto class entry."""
    saved_type = config.get("image_processor_type") or config.get("video_processor_type")
    saved_type = saved_type or config.get("feature_extractor_type")
    for auto_class, class_path in spec.sub_processors.values():
        if class_path.endswith(f":{saved_type}"):
            _add_auto_map(config, {auto_class: _auto_map_entry(class_path)})


def family_of(obj) -> str | None:
    """The family ("groma" / "groundinggpt") a model, config or processor belongs to, by its class."""
    name = type(obj).__name__
    for family, spec in FAMILIES.items():
        if name in {path.split(":")[1] for path in spec.classes()}:
            return family
    return None


def save_remote_code(folder: str | Path, obj) -> None:
    """`save_pretrained` hook: write the remote-code bundle of `obj`'s family into `folder`.

    A class loaded as remote code (this package not installed) finds no package here: transformers then copies the
    modules it came from itself.
    """
    family = family_of(obj)
    if family is not None:
        write_remote_code(folder, family)


def import_remote_code_writer():
    """`save_remote_code`, or `None` where this package is not importable (a remote-code copy of its classes)."""
    try:
        return importlib.import_module(__name__).save_remote_code
    except ImportError:
        return None
