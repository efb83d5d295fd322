"""Scenes of the synthetic grounding world: 1-4 coloured shapes on a plain or noisy background.

Every object is a distinct (colour, shape) pair of `COLORS` x `SHAPES`; its side is 12-40% of the image's shorter side,
objects do not overlap (a gap of at least `GAP` of the shorter side separates their boxes), and images are about
224-640 px in several aspect ratios. A scene is a pure function of its seed.
"""

import numbers
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 75, 220),
    "yellow": (235, 205, 35),
}
SHAPES = ("square", "circle", "triangle")
MAX_OBJECTS = 4
SIDE_RANGE = (0.12, 0.40)  # object side, as a fraction of the shorter image side
GAP = 0.02  # least gap between two objects' boxes, as a fraction of the shorter image side
SHORT_SIDE_RANGE = (224, 448)
MAX_SIDE = 640
ASPECT_RATIOS = (1.0, 4 / 3, 3 / 2, 16 / 9)
COLOR_JITTER = 20  # per-channel jitter of an object's colour
NOISE_STD = 18.0  # standard deviation of a noisy background's per-pixel noise
MIN_IMAGE_SIDE = 32
_PLACEMENT_TRIES = 200


@dataclass(frozen=True)
class SyntheticObject:
    """One shape of a scene.

    Args:
        color: One of `COLORS`.
        shape: One of `SHAPES`.
        box: Pixel `(x1, y1, x2, y2)` of the shape's tight box (`x2`, `y2` exclusive).
    """

    color: str
    shape: str
    box: tuple[float, float, float, float]

    @property
    def name(self) -> str:
        """`"{color} {shape}"`, e.g. `"red square"`."""
        return f"{self.color} {self.shape}"


@dataclass
class SyntheticScene:
    """A generated image and its objects.

    Args:
        image: The RGB image.
        objects: Its shapes, in the order they were placed (largest first).
        seed: The seed the scene was generated from.
    """

    image: Image.Image
    objects: list[SyntheticObject]
    seed: int


def _check_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__}.")
    return int(value)


def _random_size(rng: random.Random) -> tuple[int, int]:
    short = rng.randint(*SHORT_SIDE_RANGE)
    long = min(MAX_SIDE, round(short * rng.choice(ASPECT_RATIOS)))
    return (long, short) if rng.random() < 0.5 else (short, long)


def _background(rng: random.Random, width: int, height: int) -> Image.Image:
    """A plain or noisy greyish background (never close to an object colour)."""
    grey = rng.randint(70, 190)
    base = np.array([grey + rng.randint(-12, 12) for _ in range(3)], dtype=np.float32)
    pixels = np.broadcast_to(base, (height, width, 3)).copy()
    if rng.random() < 0.5:
        noise_rng = np.random.default_rng(rng.getrandbits(64))
        pixels += noise_rng.normal(0.0, NOISE_STD, size=pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")


def _place(rng: random.Random, sides: list[int], width: int, height: int) -> list[tuple[int, int, int]]:
    """Non-overlapping `(x, y, side)` squares for `sides` (largest first); a side that finds no free spot in
    `_PLACEMENT_TRIES` tries shrinks by 10% (never below the smallest allowed side) and tries again."""
    gap = GAP * min(width, height)
    min_side = max(1, round(SIDE_RANGE[0] * min(width, height)))
    placed: list[tuple[int, int, int]] = []
    for side in sides:
        while True:
            for _ in range(_PLACEMENT_TRIES):
                x, y = rng.randint(0, width - side), rng.randint(0, height - side)
                if all(
                    x + side + gap <= px or px + ps + gap <= x or y + side + gap <= py or py + ps + gap <= y
                    for px, py, ps in placed
                ):
                    placed.append((x, y, side))
                    break
            else:
                if side == min_side:
                    raise RuntimeError("could not place the objects without overlap")  # unreachable at 4 objects
                side = max(min_side, int(side * 0.9))
                continue
            break
    return placed


def _draw(draw: ImageDraw.ImageDraw, shape: str, x: int, y: int, side: int, fill: tuple[int, int, int]) -> None:
    last = side - 1
    if shape == "square":
        draw.rectangle([x, y, x + last, y + last], fill=fill)
    elif shape == "circle":
        draw.ellipse([x, y, x + last, y + last], fill=fill)
    else:
        draw.polygon([(x, y + last), (x + last, y + last), (x + last / 2, y)], fill=fill)


def generate_scene(seed: int, num_objects: int | None = None, size: tuple[int, int] | None = None) -> SyntheticScene:
    """Generate one scene of the synthetic world; the same arguments always give the same scene.

    Args:
        seed: Seeds every random choice (objects, colours, sizes, positions, background).
        num_objects: How many shapes, 1 to `MAX_OBJECTS`; drawn uniformly when None.
        size: `(width, height)` of the image in pixels, each at least 32; drawn when None (shorter side 224-448 px,
            longer side at most 640 px, aspect ratio 1, 4:3, 3:2 or 16:9, landscape or portrait).

    Returns:
        A [`SyntheticScene`]; its objects' boxes are pixel `(x1, y1, x2, y2)`.

    Raises:
        TypeError: if `seed` or `num_objects` is not an int, or `size` is not a pair of ints.
        ValueError: if `num_objects` is outside 1..`MAX_OBJECTS` or a side of `size` is under 32.
    """
    rng = random.Random(_check_int(seed, "seed"))
    if num_objects is None:
        num_objects = rng.randint(1, MAX_OBJECTS)
    elif not 1 <= _check_int(num_objects, "num_objects") <= MAX_OBJECTS:
        raise ValueError(f"`num_objects` must be in [1, {MAX_OBJECTS}], got {num_objects}.")
    if size is None:
        width, height = _random_size(rng)
    else:
        if not isinstance(size, (tuple, list)) or len(size) != 2:
            raise TypeError(f"`size` must be a (width, height) pair of ints, got {size!r}.")
        width, height = (_check_int(side, "size") for side in size)
        if min(width, height) < MIN_IMAGE_SIDE:
            raise ValueError(f"`size` must be at least {MIN_IMAGE_SIDE} px on each side, got {size!r}.")
    kinds = rng.sample([(color, shape) for color in COLORS for shape in SHAPES], num_objects)
    short = min(width, height)
    sides = sorted((round(rng.uniform(*SIDE_RANGE) * short) for _ in kinds), reverse=True)
    image = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    objects = []
    for (color, shape), (x, y, side) in zip(kinds, _place(rng, sides, width, height)):
        fill = tuple(min(255, max(0, channel + rng.randint(-COLOR_JITTER, COLOR_JITTER))) for channel in COLORS[color])
        _draw(draw, shape, x, y, side, fill)
        objects.append(SyntheticObject(color, shape, (float(x), float(y), float(x + side), float(y + side))))
    return SyntheticScene(image, objects, seed)
