"""Runtime: model files and what runs them.

`card` is the model card every model file carries, `checkpoint` reads and writes PyTorch checkpoints,
`recognizer` runs a model (torch or ONNX Runtime) on images, `export` and `quantize` write ONNX files.
"""
