"""Write a toy dataset in GroundingGPT's training format, to try `groma-train-groundinggpt` offline with
`--init_from_tiny` (needs PyAV for the videos).

    python examples/groundinggpt/make_toy_data.py toy-gg

creates `toy-gg/images/*.png` (a red square on grey), `toy-gg/videos/*.mp4` (a grey clip that turns white for a
while), `toy-gg/sounds/*.wav` (tones) and `toy-gg/train.json`: per sample, a referring-expression question (image,
box answer), a temporal-grounding question (video, time-span answer), an audio caption (sound) and a sound
localisation question (image + sound, box answer), in the original annotation format.
"""

import argparse
import json
import random
import wave
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from transformers_groma.processing.groundinggpt import format_box, pixels_to_padded_square_box


FPS = 5
SAMPLING_RATE = 16000


def write_image(path: Path, rng: random.Random) -> str:
    """A grey image with a red square; returns the square's box as the model writes it (padded-square, 3 decimals)."""
    width, height = rng.choice([(160, 120), (120, 160), (128, 128)])
    w, h = rng.randint(30, 60), rng.randint(30, 60)
    x, y = rng.randint(0, width - w), rng.randint(0, height - h)
    image = Image.new("RGB", (width, height), (128, 128, 128))
    ImageDraw.Draw(image).rectangle([x, y, x + w - 1, y + h - 1], fill=(220, 40, 40))
    image.save(path)
    return format_box(pixels_to_padded_square_box([x, y, x + w, y + h], (height, width)))


def write_video(path: Path, rng: random.Random) -> str:
    """A 32 x 32 grey clip of 10-20 frames that is white from one frame to another; returns that span as the model
    writes it (`{t1, t2}`, fractions of the clip)."""
    num_frames = rng.randint(10, 20)
    start = rng.randint(0, num_frames - 4)
    end = rng.randint(start + 2, num_frames)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(num_frames):
            frame = np.full((32, 32, 3), 250 if start <= index < end else 60, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return f"{{{start / num_frames:.2f}, {end / num_frames:.2f}}}"


def write_sound(path: Path, rng: random.Random) -> str:
    """A 16-bit mono WAV tone of 2.5-4 s; returns its description."""
    frequency = rng.choice([220, 440, 880])
    time = np.arange(int(rng.uniform(2.5, 4.0) * SAMPLING_RATE)) / SAMPLING_RATE
    samples = (0.5 * np.sin(2 * np.pi * frequency * time) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLING_RATE)
        handle.writeframes(samples.tobytes())
    return f"A steady {frequency} Hz tone."


def turns(question: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--num_samples", type=int, default=4, help="Samples per task (4 tasks).")
    args = parser.parse_args()
    root = args.output_dir.resolve()
    for folder in ("images", "videos", "sounds"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    records = []
    for index in range(args.num_samples):
        image, video, sound = f"{index:03d}.png", f"{index:03d}.mp4", f"{index:03d}.wav"
        box = write_image(root / "images" / image, rng)
        span = write_video(root / "videos" / video, rng)
        description = write_sound(root / "sounds" / sound, rng)
        records += [
            {"image": image, "conversations": turns("<image>\nWhere is the red square?", f"The red square{box}.")},
            {"video": video, "conversations": turns("<video>\nWhen does the clip turn white?", f"In {span}.")},
            {"sound": sound, "conversations": turns("<sound>\nWhat can you hear in this audio?", description)},
            {
                "image": image,
                "sound": sound,
                "conversations": turns(
                    "<image>\n<sound>\nWhere is the sound's point of emission in this image?", f"The red square{box}."
                ),
            },
        ]
    (root / "train.json").write_text(json.dumps(records, indent=1))
    print(f"{len(records)} records in {root / 'train.json'}")


if __name__ == "__main__":
    main()
