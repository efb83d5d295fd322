"""HTML of grounded answers for the demo: the answer text with its grounded spans marked in the colour of their boxes,
and a legend that pairs each colour with its phrase and pixel boxes (the colours of `draw_grounding`)."""

import html
from collections.abc import Sequence

from ..processing.visualization import BOX_COLORS


def css_color(index: int, alpha: float = 1.0) -> str:
    """The CSS `rgba(...)` of `BOX_COLORS[index % len(BOX_COLORS)]`, the colour `draw_grounding` gives entity `index`."""
    red, green, blue = BOX_COLORS[index % len(BOX_COLORS)]
    return f"rgba({red}, {green}, {blue}, {alpha})"


def format_box(box: Sequence[float]) -> str:
    """`[x1, y1, x2, y2]` rounded to whole pixels."""
    return "[" + ", ".join(f"{value:.0f}" for value in box) + "]"


def highlighted_html(
    text: str, marks: Sequence[tuple[tuple[int, int], int]], legend: Sequence[tuple[int, str]]
) -> str:
    """The answer `text` with each `((start, end), color_index)` character span marked in its colour, then one legend
    line `(color_index, label)` per grounded item. Spans must not overlap; all text is HTML-escaped."""
    pieces, position = [], 0
    for (start, end), color_index in sorted(marks):
        pieces.append(html.escape(text[position:start]))
        pieces.append(
            f'<mark class="grounded" data-color="{color_index}" style="background: {css_color(color_index, 0.25)}; '
            f'border-bottom: 3px solid {css_color(color_index)}; color: inherit">{html.escape(text[start:end])}</mark>'
        )
        position = end
    pieces.append(html.escape(text[position:]))
    items = "".join(
        f'<li data-color="{color_index}"><span class="swatch" style="display: inline-block; width: 0.9em; '
        f'height: 0.9em; margin-right: 0.4em; background: {css_color(color_index)}"></span>{html.escape(label)}</li>'
        for color_index, label in legend
    )
    legend_html = f'<ul class="legend" style="list-style: none; padding-left: 0">{items}</ul>' if items else ""
    return f'<div class="answer"><p class="answer-text">{"".join(pieces)}</p>{legend_html}</div>'


def entity_line(entity: dict) -> str:
    """`"phrase: [x1, y1, x2, y2], ..."` of a Groma entity; one without a phrase is named by its region tokens."""
    name = entity["phrase"] or " ".join(f"<r{region}>" for region in entity["region_indices"]) or "(answer)"
    return f"{name}: {', '.join(format_box(box) for box in entity['boxes'])}"


def groma_answer_html(entities: Sequence[dict], text: str) -> str:
    """A Groma answer (`text` and `entities` of `post_process_grounding`) as highlighted HTML: entity `i` is marked
    and listed (see [`entity_line`]) in the colour of its boxes in `draw_grounding`."""
    marks = [(entity["span"], index) for index, entity in enumerate(entities) if entity["span"] is not None]
    return highlighted_html(text, marks, [(index, entity_line(entity)) for index, entity in enumerate(entities)])


def groundinggpt_answer_html(result: dict) -> str:
    """A GroundingGPT result (`text`, `boxes` and `time_spans` of `post_process_grounding`) as highlighted HTML: each
    box in the colour of its group in `draw_grounded_boxes`, each time span in the last of `BOX_COLORS` with its
    seconds."""
    marks = [(box["span"], box["group"]) for box in result["boxes"]]
    legend = [
        (
            box["group"],
            f"[{box['group']}] {format_box(box['box']) if box['box'] is not None else box['normalized_box']}",
        )
        for box in result["boxes"]
    ]
    text = result["text"]
    for span in result["time_spans"]:
        seconds = span["seconds"]
        where = f"{seconds[0]:.1f}-{seconds[1]:.1f} s" if seconds is not None else "of the video"
        legend.append((len(BOX_COLORS) - 1, f"{text[span['span'][0] : span['span'][1]]}: {where}"))
        marks.append((span["span"], len(BOX_COLORS) - 1))
    return highlighted_html(text, marks, legend)
