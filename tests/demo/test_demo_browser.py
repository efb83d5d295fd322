"""`groma demo --tiny` end to end in headless Chromium: the shipped demo model locates the red square of a generated
scene, describes a box drawn on it and every region it finds, bad inputs get messages in the page, and the GroundingGPT tab answers about an
image and a video. Screenshots are saved (the folder is printed; set GROMA_DEMO_SCREENSHOTS to choose it)."""

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transformers_groma.processing import BOX_COLORS
from transformers_groma.synthetic import generate_scene

from ..groundinggpt.conftest import write_video


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT_S = 300
ANSWER_TIMEOUT_MS = 120_000
TEXT_OF = "(selector) => (document.querySelector(selector)?.innerText ?? '').trim()"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium browser on this machine and none could be installed (apt-get install chromium)",
)


def iou(box_a, box_b) -> float:
    """Intersection over union of two `[x1, y1, x2, y2]` boxes."""
    width = min(box_a[2], box_b[2]) - max(box_a[0], box_b[0])
    height = min(box_a[3], box_b[3]) - max(box_a[1], box_b[1])
    inter = max(width, 0) * max(height, 0)
    area = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1]) + (box_b[2] - box_b[0]) * (box_b[3] - box_b[1])
    return inter / (area - inter)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    """`groma demo --tiny --tiny-groundinggpt` serving on a free localhost port."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("demo-server") / "demo.log"
    command = [sys.executable, "-m", "transformers_groma.cli", "demo", "--tiny", "--tiny-groundinggpt"]
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [*command, "--port", str(port), "--device", "cpu"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            if server.poll() is not None:
                pytest.fail(f"groma demo exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"groma demo did not answer within {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("GROMA_DEMO_SCREENSHOTS") or tmp_path_factory.mktemp("demo-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser, demo_url, screenshots, request, capsys):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(demo_url)
    page.wait_for_selector("#groma-ask")
    yield page
    path = screenshots / f"{request.node.name}.png"
    page.screenshot(path=path, full_page=True)
    page.close()
    with capsys.disabled():
        print(f"\nscreenshot: {path}")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A generated scene with a red square among two or more other shapes on a plain background (small screenshots),
    saved as PNG; `(path, scene, red square box)`."""
    for seed in range(1000):
        scene = generate_scene(seed)
        boxes = {obj.name: obj.box for obj in scene.objects}
        corner = np.asarray(scene.image)[:8, :8].reshape(-1, 3)
        if "red square" in boxes and len(boxes) >= 3 and (corner == corner[0]).all():
            path = tmp_path_factory.mktemp("scene") / f"scene_{seed}.png"
            scene.image.save(path)
            return path, scene, boxes["red square"]
    raise AssertionError(
        "no generated scene of the first 1000 seeds has a red square, two more shapes and a plain background"
    )


def text_of(page, selector: str) -> str:
    """The text of the element `selector`, or "" when the page has none (an empty component renders no content)."""
    return page.evaluate(f"({TEXT_OF})({selector!r})")


def status(page, prefix: str = "groma") -> str:
    """The message shown in a tab's message area (empty when all went well)."""
    return text_of(page, f"#{prefix}-status [data-testid=markdown]")


def result_json(page, prefix: str = "groma") -> str:
    return text_of(page, f"#{prefix}-json .cm-content")


def ask(page, prefix: str = "groma") -> None:
    """Clicks Ask and waits until the result JSON or the message changes and the page is idle again."""
    before = result_json(page, prefix), status(page, prefix)
    page.click(f"#{prefix}-ask")
    page.wait_for_function(
        f"""([prefix, json, message]) => {{
            const textOf = {TEXT_OF};
            const now = [textOf(`#${{prefix}}-json .cm-content`), textOf(`#${{prefix}}-status [data-testid=markdown]`)];
            const busy = document.querySelectorAll("[data-testid=status-tracker]:not(.hide)").length > 0;
            return !busy && (now[0] !== json || now[1] !== message);
        }}""",
        arg=[prefix, *before],
        timeout=ANSWER_TIMEOUT_MS,
    )


def upload(page, selector: str, path) -> None:
    """Clicks the upload component `selector` and picks the file at `path` in the file chooser."""
    with page.expect_file_chooser() as chooser:
        page.click(selector)
    chooser.value.set_files(str(path))


def rendered_picture(page, selector: str) -> Image.Image:
    """The picture an image component shows, as downloaded by the page."""
    source = page.locator(f"{selector} img").first.get_attribute("src")
    return Image.open(io.BytesIO(page.request.get(source).body())).convert("RGB")


def legend_box(page, label: str) -> list[float]:
    """The first box of the legend line `label: [x1, y1, x2, y2]`."""
    text = page.inner_text("#groma-answer")
    match = re.search(re.escape(label) + r": \[(\d+), (\d+), (\d+), (\d+)\]", text)
    assert match, f"no legend line for {label!r} in the answer:\n{text}"
    return [float(value) for value in match.groups()]


def test_locate_the_red_square(page, scene):
    path, _, red_square = scene
    upload(page, "#groma-upload", path)
    page.wait_for_selector("#groma-image canvas")
    page.fill("#groma-question textarea", "Locate the red square")
    ask(page)
    assert status(page) == ""
    chat = page.inner_text("#groma-chat")
    assert "Locate the red square in the image." in chat and "the red square: [" in chat
    assert '"referent": "the red square"' in result_json(page)
    box = legend_box(page, "the red square")
    # the picture shows that box in the legend's colour (the first entity's)
    picture = rendered_picture(page, "#groma-picture")
    x1, y1, x2, y2 = (round(value) for value in box)
    edge = [picture.getpixel((x1 + 1, y)) for y in range(y1 + 4, y2 - 4)]
    assert edge.count(BOX_COLORS[0]) > 0.8 * len(edge)
    assert iou(box, red_square) > 0.5, f"located {box}, the red square is at {red_square}"


def draw_box(page, image_size: tuple[int, int], box) -> None:
    """Drags out `box` (pixels of the image) on the image annotator, which shows the image fitted and centred."""
    canvas = page.locator("#groma-image canvas").bounding_box()
    scale = min(canvas["width"] / image_size[0], canvas["height"] / image_size[1])
    left = canvas["x"] + (canvas["width"] - image_size[0] * scale) / 2
    top = canvas["y"] + (canvas["height"] - image_size[1] * scale) / 2
    page.mouse.move(left + box[0] * scale, top + box[1] * scale)
    page.mouse.down()
    page.mouse.move(left + box[2] * scale, top + box[3] * scale, steps=10)
    page.mouse.up()


def test_describe_a_drawn_box(page, scene):
    path, generated, red_square = scene
    upload(page, "#groma-upload", path)
    page.wait_for_selector("#groma-image canvas")
    page.wait_for_timeout(500)  # the annotator lays the image out
    draw_box(page, generated.image.size, red_square)
    page.get_by_label("Describe the boxes").check()
    ask(page)
    assert status(page) == ""
    referred = re.search(r'"boxes": \[\s*\[([^\]]*)\]', result_json(page))
    assert referred, result_json(page)
    drawn = [float(value) for value in referred.group(1).split(",")]
    assert iou(drawn, red_square) > 0.8, f"drew {drawn} over the red square at {red_square}"
    answer = page.inner_text("#groma-answer")
    assert answer.strip(), "the page shows no answer"
    assert "red square" in answer.lower(), f"described the red square as {answer!r}"


def test_describe_every_region(page, scene):
    path, generated, red_square = scene
    upload(page, "#groma-upload", path)
    page.wait_for_selector("#groma-image canvas")
    page.get_by_label("Describe every region").check()
    ask(page)
    assert status(page) == ""
    assert "Describe every region" in page.inner_text("#groma-chat")
    # one legend line per object, each naming it with a box on it
    for obj in generated.objects:
        box = legend_box(page, f"A {obj.name}.")
        assert iou(box, obj.box) > 0.5, f"described {obj.name} at {box}; it is at {obj.box}"
    # the red square's box is drawn in the colour of its legend line
    legend = page.inner_text("#groma-answer").splitlines()
    index = next(i for i, line in enumerate(line for line in legend if ": [" in line) if "A red square." in line)
    x1, y1, x2, y2 = (round(value) for value in legend_box(page, "A red square."))
    picture = rendered_picture(page, "#groma-picture")
    edge = [picture.getpixel((x1 + 1, y)) for y in range(y1 + 4, y2 - 4)]
    assert edge.count(BOX_COLORS[index % len(BOX_COLORS)]) > 0.8 * len(edge), red_square


def test_bad_inputs_get_messages_in_the_page(page, tmp_path):
    ask(page)
    assert "Upload an image or pick an example scene first" in status(page)
    (tmp_path / "notes.png").write_text("not a picture")
    upload(page, "#groma-upload", tmp_path / "notes.png")
    page.wait_for_function(f"({TEXT_OF})('#groma-status [data-testid=markdown]').includes('cannot be read')")
    page.click("#groma-example")
    page.wait_for_selector("#groma-image canvas")
    page.get_by_label("Describe the boxes").check()
    page.fill("#groma-boxes textarea", "0, 0, 5000, 10")
    ask(page)
    assert "is not inside the image" in status(page)
    page.fill("#groma-boxes textarea", "1, 2, 3")
    ask(page)
    assert "must be four numbers" in status(page)
    assert "Traceback" not in page.content()


def test_groundinggpt_tab_answers_about_an_image_and_a_video(page, scene, tmp_path):
    page.get_by_role("tab", name="GroundingGPT").click()
    write_video(tmp_path / "clip.mp4", num_frames=10)
    upload(page, "#ggpt-image", scene[0])
    upload(page, "#ggpt-video", tmp_path / "clip.mp4")
    page.fill("#ggpt-question textarea", "What happens?")
    ask(page, "ggpt")
    assert status(page, "ggpt") == ""
    assert rendered_picture(page, "#ggpt-picture").size == scene[1].image.size
    assert rendered_picture(page, "#ggpt-timeline").size == (640, 72)
    assert '"video_duration": 2.0' in result_json(page, "ggpt")
