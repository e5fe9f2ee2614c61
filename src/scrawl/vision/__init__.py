"""Vision: from a user's image to model input.

`ink` decodes any image into an ink map (polarity, lighting, contrast), `framing` lays the ink out the
way a model's training data was made (FrameSpec) and turns images into model input (`to_input`),
`segment` cuts a string of characters into pieces and joins their labels into lines, `lines` splits a
page into lines of handwriting for a line model (framing "line": any width, one height).
"""

from .framing import FrameSpec, frame, frame_batch, line_spec, to_input  # noqa: F401
from .ink import MAX_PIXELS, load_image  # noqa: F401

__all__ = ["FrameSpec", "MAX_PIXELS", "frame", "frame_batch", "line_spec", "load_image", "to_input"]
