"""GroundingGPT's conversation format (`conv_lego`, LLaVA-v0 style with a "###" separator; spec §3.1)."""

SYSTEM_PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
SEPARATOR = "###"

# Placeholders written in prompts; the processor expands each into its <xx_start> + N x <xx_patch> + <xx_end> block.
IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"
AUDIO_PLACEHOLDER = "<sound>"

# `system###Human: <turn>###Assistant: <answer>###Human: ...###Assistant:`. In a user turn the media come first, in
# the order of the original demo (sound, video, image, each followed by a newline), then the text.
CHAT_TEMPLATE = (
    '{%- set system = "' + SYSTEM_PROMPT + '" -%}'
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set system = messages[0]['content'] -%}"
    "{%- else -%}{%- set system = messages[0]['content'] | selectattr('type', 'equalto', 'text') "
    "| map(attribute='text') | join('') -%}{%- endif -%}"
    "{%- set messages = messages[1:] -%}"
    "{%- endif -%}"
    "{{- system + '###' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{- 'Human: ' -}}"
    "{%- elif message['role'] == 'assistant' -%}{{- 'Assistant: ' -}}"
    "{%- else -%}{{- raise_exception('After an optional system message, roles must be user or assistant.') -}}"
    "{%- endif -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for item in message['content'] if item['type'] == 'audio' -%}{{- '<sound>\\n' -}}{%- endfor -%}"
    "{%- for item in message['content'] if item['type'] == 'video' -%}{{- '<video>\\n' -}}{%- endfor -%}"
    "{%- for item in message['content'] if item['type'] == 'image' -%}{{- '<image>\\n' -}}{%- endfor -%}"
    "{%- for item in message['content'] if item['type'] == 'text' -%}{{- item['text'] -}}{%- endfor -%}"
    "{%- endif -%}"
    "{{- '###' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)

__all__ = [
    "AUDIO_PLACEHOLDER",
    "CHAT_TEMPLATE",
    "IMAGE_PLACEHOLDER",
    "SEPARATOR",
    "SYSTEM_PROMPT",
    "VIDEO_PLACEHOLDER",
]
