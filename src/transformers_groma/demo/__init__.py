"""`groma demo`: a Gradio page to chat with Groma and GroundingGPT about images, videos and audio.

`launch` (options and model loading) imports no Gradio; `app` (the page) does, and is imported when the demo starts.
"""
