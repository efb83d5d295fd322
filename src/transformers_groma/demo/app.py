"""The Gradio page of `groma demo`: a Groma tab (grounded chat about an image, with boxes to refer to) and a
GroundingGPT tab (image, video and audio questions). Importing this module imports Gradio."""

import json
import re

import gradio as gr
from gradio_image_annotation import image_annotator
from transformers import PreTrainedModel, ProcessorMixin

from ..cli import public_fields
from ..processing import REFER_REGION, parse_grounded_text
from ..synthetic import generate_scene
from .groma_chat import (
    EVERY_REGION,
    LOCATE,
    TASKS,
    TASKS_WITH_BOXES,
    DemoInputError,
    GenerationSettings,
    GromaChat,
    annotator_boxes,
    build_query,
    display_entities,
    locate_expression,
    parse_typed_boxes,
    read_image,
)
from .groundinggpt_chat import ask_groundinggpt
from .rendering import entity_line, format_box, groma_answer_html, groundinggpt_answer_html


ModelPair = tuple[PreTrainedModel, ProcessorMixin]
EXAMPLE_SEED = 25  # four shapes on a plain background
# A list of numbers as `json.dumps(..., indent=2)` writes it: one number a line (newlines only occur between tokens).
_NUMBER_LIST = re.compile(r"\[\n\s*((?:-?[\d.eE+-]+,\n\s*)*-?[\d.eE+-]+)\n\s*\]")


def error_message(error: Exception) -> str:
    """The page's message for a bad input."""
    return f"⚠️ {error}"


def readable_query(query: str, boxes: list[list[float]]) -> str:
    """The user's turn as the chat shows it: the query without markup, each referred box as its coordinates."""
    for box in boxes:
        text = f"box {format_box(box)}"
        query = query.replace(REFER_REGION, text, 1) if REFER_REGION in query else f"{query} {text}"
    return parse_grounded_text(query)[0]


def result_json(result: dict) -> str:
    """A result's public fields as indented JSON, each list of numbers (a box) on one line."""
    text = json.dumps(public_fields(result), indent=2)
    return _NUMBER_LIST.sub(lambda match: "[" + " ".join(match.group(1).split()) + "]", text)


def groma_tab(model: PreTrainedModel, processor: ProcessorMixin) -> None:
    """The Groma tab's components and events (inside a `gr.Blocks` context)."""
    chat = gr.State(GromaChat())
    with gr.Row():
        with gr.Column():
            annotator = image_annotator(
                label="Image: drag on it to draw boxes to refer to",
                sources=[],
                image_type="pil",
                disable_edit_boxes=True,
                show_clear_button=False,
                show_remove_button=True,
                elem_id="groma-image",
            )
            with gr.Row():
                upload = gr.UploadButton("Upload an image", type="filepath", elem_id="groma-upload")
                seed = gr.Number(EXAMPLE_SEED, label="Scene", precision=0, minimum=0, elem_id="groma-seed")
                example = gr.Button("Example scene", elem_id="groma-example")
            task = gr.Radio(list(TASKS), value=LOCATE, label="Task", elem_id="groma-task")
            question = gr.Textbox(
                label="Question", placeholder="e.g. the red square", elem_id="groma-question", submit_btn=False
            )
            typed_boxes = gr.Textbox(
                label="Boxes (optional, instead of drawing): x1, y1, x2, y2 in pixels; several separated by ;",
                elem_id="groma-boxes",
            )
            with gr.Accordion("Generation settings", open=False):
                max_new_tokens = gr.Slider(1, 512, value=128, step=1, label="Max new tokens")
                do_sample = gr.Checkbox(False, label="Sample (otherwise greedy)")
                temperature = gr.Slider(0.05, 2.0, value=0.7, step=0.05, label="Temperature")
                top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p")
            with gr.Row():
                ask = gr.Button("Ask", variant="primary", elem_id="groma-ask")
                clear = gr.Button("New conversation", elem_id="groma-clear")
        with gr.Column():
            status = gr.Markdown(elem_id="groma-status")
            picture = gr.Image(label="Answer", type="pil", format="png", interactive=False, elem_id="groma-picture")
            show_regions = gr.Checkbox(False, label="Show all regions the model selected", elem_id="groma-regions")
            answer = gr.HTML(elem_id="groma-answer")
            chatbot = gr.Chatbot(label="Conversation", elem_id="groma-chat", height=260)
            result = gr.Code(
                label="Result (JSON)",
                language="json",
                interactive=False,
                show_line_numbers=False,
                elem_id="groma-json",
            )

    def new_image(image) -> tuple:
        state = GromaChat(image=image)
        return state, {"image": image, "boxes": []}, "", image, "", [], ""

    def on_upload(path: str):
        try:
            return new_image(read_image(path))
        except DemoInputError as error:
            return gr.skip(), gr.skip(), error_message(error), *[gr.skip()] * 4

    def on_example(scene_seed: float | None):
        return new_image(generate_scene(int(scene_seed or 0)).image)

    def on_clear(state: GromaChat):
        return new_image(state.image)

    reset_outputs = [chat, annotator, status, picture, answer, chatbot, result]
    upload.upload(on_upload, inputs=upload, outputs=reset_outputs)
    example.click(on_example, inputs=seed, outputs=reset_outputs)
    clear.click(on_clear, inputs=chat, outputs=reset_outputs)

    def on_ask(state, drawn, task_name, text, typed, tokens, sample, temp, nucleus, regions, history):
        try:
            state.check_image()
            boxes = [*annotator_boxes(drawn), *parse_typed_boxes(typed)] if task_name in TASKS_WITH_BOXES else []
            query = build_query(task_name, text, len(boxes))
            referent = locate_expression(text) if task_name == LOCATE else None
            settings = GenerationSettings(tokens, sample, temp, nucleus)
            if task_name == EVERY_REGION:
                answer_result = state.describe_every_region(model, processor, query, settings)
            else:
                answer_result = state.ask(model, processor, query, boxes, settings, referent)
        except DemoInputError as error:
            return state, error_message(error), *[gr.skip()] * 6
        entities = display_entities(answer_result)
        answer_entities = entities[: len(answer_result["entities"])]
        reply = answer_result["text"] or "; ".join(entity_line(entity) for entity in answer_entities)
        history = [
            *history,
            {"role": "user", "content": EVERY_REGION if task_name == EVERY_REGION else readable_query(query, boxes)},
            {"role": "assistant", "content": reply or "(no answer)"},
        ]
        html = groma_answer_html(entities, answer_result["text"])
        # The boxes belong to this question: clear them (the chat keeps them for the next turns).
        cleared = ({"image": state.image, "boxes": []}, "") if boxes else (gr.skip(), gr.skip())
        return state, "", state.picture(regions), html, history, result_json(answer_result), *cleared

    ask_inputs = [chat, annotator, task, question, typed_boxes, max_new_tokens, do_sample, temperature, top_p]
    ask_outputs = [chat, status, picture, answer, chatbot, result, annotator, typed_boxes]
    ask.click(on_ask, inputs=[*ask_inputs, show_regions, chatbot], outputs=ask_outputs)
    question.submit(on_ask, inputs=[*ask_inputs, show_regions, chatbot], outputs=ask_outputs)
    show_regions.change(lambda state, regions: state.picture(regions), inputs=[chat, show_regions], outputs=picture)


def groundinggpt_tab(model: PreTrainedModel, processor: ProcessorMixin) -> None:
    """The GroundingGPT tab's components and events (inside a `gr.Blocks` context)."""
    with gr.Row():
        with gr.Column():
            image = gr.File(label="Image", type="filepath", elem_id="ggpt-image")
            video = gr.File(label="Video", type="filepath", elem_id="ggpt-video")
            audio = gr.File(label="Audio", type="filepath", elem_id="ggpt-audio")
            question = gr.Textbox(
                label="Question (empty: describe the media)", elem_id="ggpt-question", submit_btn=False
            )
            max_new_tokens = gr.Slider(1, 512, value=128, step=1, label="Max new tokens")
            ask = gr.Button("Ask", variant="primary", elem_id="ggpt-ask")
        with gr.Column():
            status = gr.Markdown(elem_id="ggpt-status")
            picture = gr.Image(
                label="Image with the answer's boxes", format="png", interactive=False, elem_id="ggpt-picture"
            )
            timeline = gr.Image(
                label="Video timeline of the answer", format="png", interactive=False, elem_id="ggpt-timeline"
            )
            answer = gr.HTML(elem_id="ggpt-answer")
            result = gr.Code(
                label="Result (JSON)", language="json", interactive=False, show_line_numbers=False, elem_id="ggpt-json"
            )

    def on_ask(image_path, video_path, audio_path, text, tokens):
        try:
            answer_result, boxes_picture, spans_picture = ask_groundinggpt(
                model, processor, image_path, video_path, audio_path, text, tokens
            )
        except DemoInputError as error:
            return error_message(error), None, None, "", ""
        html = groundinggpt_answer_html(answer_result)
        return "", boxes_picture, spans_picture, html, result_json(answer_result)

    ask.click(
        on_ask,
        inputs=[image, video, audio, question, max_new_tokens],
        outputs=[status, picture, timeline, answer, result],
    )


def build_demo(groma: ModelPair | None = None, groundinggpt: ModelPair | None = None) -> gr.Blocks:
    """The demo page: a tab per model family; a family without a model gets a note on how to start with one.

    Args:
        groma: `(model, processor)` of a Groma model, or None.
        groundinggpt: `(model, processor)` of a GroundingGPT model, or None.
    """
    if groma is None and groundinggpt is None:
        raise ValueError("`build_demo` needs a Groma or a GroundingGPT `(model, processor)` pair, got neither.")
    with gr.Blocks(title="Groma demo") as demo:
        gr.Markdown(
            "# Groma and GroundingGPT\nGrounded answers: every phrase the model grounds is marked in the colour of "
            "its box."
        )
        with gr.Tab("Groma", id="groma"):
            if groma is None:
                gr.Markdown("No Groma model loaded: start with `groma demo --tiny` or `--model GROMA_FOLDER`.")
            else:
                groma_tab(*groma)
        with gr.Tab("GroundingGPT", id="groundinggpt"):
            if groundinggpt is None:
                gr.Markdown("No GroundingGPT model loaded: start with `groma demo --model GROUNDINGGPT_FOLDER`.")
            else:
                groundinggpt_tab(*groundinggpt)
    return demo
