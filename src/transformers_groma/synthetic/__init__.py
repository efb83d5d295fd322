"""A synthetic grounding world: scenes of coloured shapes, their annotations in every training format, and the demo
model trained on them.

```python
from transformers_groma.synthetic import generate_scene, write_datasets

scene = generate_scene(seed=7)
scene.image                                   # PIL RGB image, 224-640 px
[(obj.name, obj.box) for obj in scene.objects]  # [("red square", (x1, y1, x2, y2)), ...]
paths = write_datasets("synthetic-data", num_scenes=1000, seed=0)  # images + COCO / REC / captions / custom JSONL
```

This is a toy world for trying and testing Groma offline; it says nothing about real images.
"""

from .datasets import CATEGORIES, scene_seed, write_datasets
from .demo import demo_model_path
from .scene import COLORS, MAX_OBJECTS, SHAPES, SyntheticObject, SyntheticScene, generate_scene
from .texts import caption_order, grounded_caption, grounded_caption_answer, referring_expression, region_caption


__all__ = [
    "CATEGORIES",
    "COLORS",
    "MAX_OBJECTS",
    "SHAPES",
    "SyntheticObject",
    "SyntheticScene",
    "caption_order",
    "demo_model_path",
    "generate_scene",
    "grounded_caption",
    "grounded_caption_answer",
    "referring_expression",
    "region_caption",
    "scene_seed",
    "write_datasets",
]
