"""transformers' own common tests (ModelTesterMixin, ConfigTester, ProcessorTesterMixin), taken at test time from the
source distribution of the INSTALLED transformers release, never copied into this repository.

`load()` downloads the sdist once with pip into a cache folder under the system temp directory, extracts
`tests/test_modeling_common.py`, `test_configuration_common.py` and `test_processing_common.py` into an importable
package, adds our stand-ins for the modules they import that the sdist does not ship (`standins/`), and imports it.
Without network the tests skip with the reason, except under `CI=true`, where they fail.
"""

import importlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
import unittest
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock

import pytest
import transformers


PACKAGE = "hf_common_tests"
COMMON_FILES = ("test_modeling_common.py", "test_configuration_common.py", "test_processing_common.py")
# our stand-in -> where the sdist's tests import it from (relative to the package; `utils/` sits next to it)
STANDINS = {
    "generation_test_utils.py": f"{PACKAGE}/generation/test_utils.py",
    "exporters_test_export.py": f"{PACKAGE}/exporters/test_export.py",
    "utils_test_configuration_utils.py": f"{PACKAGE}/utils/test_configuration_utils.py",
    "fetch_hub_objects_for_ci.py": "utils/fetch_hub_objects_for_ci.py",
}
STANDIN_DIR = Path(__file__).parent / "standins"
# ProcessorTesterMixin tests that read images, videos or audio from the Hub (transformers' CI downloads them first
# with utils/fetch_hub_objects_for_ci.py, which the sdist does not ship); this suite downloads nothing.
HUB_MEDIA = "reads media from the Hub (transformers' CI prefetches them); this suite downloads nothing at test time"
HUB_MEDIA_TESTS = (
    "test_apply_chat_template_image",
    "test_apply_chat_template_video",
    "test_apply_chat_template_audio",
    "test_apply_chat_template_video_frame_sampling",
)


def cache_root() -> Path:
    """The folder holding the extracted tests of the installed release (created by this module only)."""
    return Path(tempfile.gettempdir()) / "transformers-groma-common-tests" / transformers.__version__


def _download_and_extract(root: Path) -> None:
    version = transformers.__version__
    with tempfile.TemporaryDirectory() as download_dir:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet"]
        command += ["-d", download_dir, f"transformers=={version}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        archives = list(Path(download_dir).glob("transformers-*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise OSError(f"`pip download transformers=={version}` (sdist) failed: {result.stderr.strip()[-500:]}")
        staging = Path(tempfile.mkdtemp(dir=root.parent))
        with tarfile.open(archives[0]) as archive:
            for name in COMMON_FILES:
                member = archive.getmember(f"transformers-{version}/tests/{name}")
                (staging / PACKAGE).mkdir(exist_ok=True)
                (staging / PACKAGE / name).write_bytes(archive.extractfile(member).read())
    for standin, target in STANDINS.items():
        (staging / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(STANDIN_DIR / standin, staging / target)
    for folder in (PACKAGE, f"{PACKAGE}/generation", f"{PACKAGE}/exporters", f"{PACKAGE}/utils"):
        (staging / folder / "__init__.py").touch()
    try:
        staging.rename(root)
    except OSError:  # another process extracted it meanwhile
        shutil.rmtree(staging)


def load(module: str):
    """Import `hf_common_tests.<module>` from the installed release's sdist (skip, or fail under CI, without it)."""
    root = cache_root()
    if not (root / PACKAGE / "test_modeling_common.py").exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            _download_and_extract(root)
        except (OSError, subprocess.SubprocessError, KeyError) as error:
            reason = f"transformers' common tests need the transformers {transformers.__version__} sdist: {error}"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason, allow_module_level=True)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"{PACKAGE}.{module}")


def load_common_tests():
    """`test_modeling_common`, `test_configuration_common`, `test_processing_common` and `GenerationTesterMixin`."""
    modules = [load(name) for name in ("test_modeling_common", "test_configuration_common", "test_processing_common")]
    return (*modules, load("generation.test_utils").GenerationTesterMixin)


class RegisteredInAutoTables:
    """unittest mixin listing the model in transformers' Auto name tables while its tests run.

    The common tests tell base models and VLM heads apart by those tables, which list the built-in models; this
    package registers its classes with `AutoModel.register`, which the tables do not show. `auto_tables` is
    `(model_type, base model class name, generation class name)`.
    """

    auto_tables: tuple[str, str, str]

    @classmethod
    def setUpClass(cls):
        cls._registered = register_in_auto_tables(*cls.auto_tables)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        cls._registered.close()
        super().tearDownClass()


class PromptShapedLabels:
    """unittest mixin: labels of the prompt's shape (`input_ids`), as the models take them.

    The models expand their placeholders themselves, so the common tests' `seq_length` is the expanded length; their
    `_prepare_for_class` would build labels of that length, which the models reject.
    """

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if "labels" in inputs_dict and "input_ids" in inputs_dict:
            inputs_dict["labels"] = inputs_dict["input_ids"].new_zeros(inputs_dict["input_ids"].shape)
        return inputs_dict


def register_in_auto_tables(model_type: str, base_model: str, generation_model: str) -> ExitStack:
    """List `base_model` and `generation_model` in transformers' Auto name tables (`MODEL_MAPPING_NAMES`,
    `MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES`) under `model_type`, as built-in models are; undone on `close()`."""
    from transformers.models.auto import modeling_auto

    stack = ExitStack()
    for table, name in (
        ("MODEL_MAPPING_NAMES", base_model),
        ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", generation_model),
    ):
        stack.enter_context(mock.patch.dict(getattr(modeling_auto, table), {model_type: name}))
    return stack


def common_tests_named(cls: type, base: str) -> list[str]:
    """The tests of `cls` named `base` or its parameterized variants `base_<i>_...` (`parameterized.expand` leaves
    `base` itself as None beside them)."""
    return [name for name in dir(cls) if re.fullmatch(rf"{base}(_\d+(_\w*)?)?", name) and getattr(cls, name)]


def skip_common_tests(reasons: dict[str, str]):
    """Class decorator: skip the common tests named in `reasons` (with their parameterized variants `name_<i>_...`)
    for the reason given."""

    def decorate(cls):
        for base, reason in reasons.items():
            for name in common_tests_named(cls, base):
                setattr(cls, name, unittest.skip(reason)(getattr(cls, name)))
        return cls

    return decorate


def mark_common_tests(cls: type, base: str, mark: pytest.MarkDecorator) -> None:
    """Put `mark` on the tests `common_tests_named(cls, base)` of `cls` only: on a copy of each function, since pytest
    stores marks on the function object, which the common mixins share with every class that inherits them."""
    for name in common_tests_named(cls, base):
        test = getattr(cls, name)
        copy = types.FunctionType(test.__code__, test.__globals__, test.__name__, test.__defaults__, test.__closure__)
        copy.__dict__.update(test.__dict__)
        copy.__qualname__, copy.__kwdefaults__ = test.__qualname__, test.__kwdefaults__
        setattr(cls, name, mark(copy))


def shows_future_warnings(*names: str):
    """Class decorator: let the common tests `names` (where the release has them) see FutureWarning, which the suite
    otherwise ignores (pyproject.toml, for third-party deprecations); e.g. the old cache name's deprecation test."""

    def decorate(cls):
        for base in names:
            mark_common_tests(cls, base, pytest.mark.filterwarnings("always::FutureWarning"))
        return cls

    return decorate


@contextmanager
def transformers_verbosity(level: int):
    """Run the block with transformers' logging at `level`, restoring the previous verbosity after it."""
    from transformers.utils import logging as transformers_logging

    previous = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity(level)
    try:
        yield
    finally:
        transformers_logging.set_verbosity(previous)
