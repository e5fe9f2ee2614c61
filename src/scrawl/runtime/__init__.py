"""Runtime: model files and what runs them.

`card` is the model card every model file carries, `checkpoint` reads and writes PyTorch checkpoints,
`recognizer` runs a model (torch or ONNX Runtime) on images, `reader` reads lines of handwriting with a
line model (text, confidences, character boxes, n-best), `batch` reads folders in worker processes,
`export` and `quantize` write ONNX files.
"""
