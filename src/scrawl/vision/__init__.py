"""Vision: from a user's image to model input.

`ink` decodes any image into an ink map (polarity, lighting, contrast), `framing` lays the ink out the
way a model's training data was made (FrameSpec), `segment` cuts a string of characters into pieces.
"""

from .preprocess import MAX_PIXELS, FrameSpec, frame, frame_batch, load_image, to_tensor  # noqa: F401
