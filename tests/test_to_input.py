"""Tests for scrawl.vision.to_input: the one conversion of images into model input, (N, 1, H, W) float32.

It replaced five copies (training.to_input, preprocess.to_tensor, the recognizer's _as_batch, export's
and cmd_evaluate's); the reference formulas below are those copies, and the results must equal them bit
for bit.
"""

import subprocess
import sys

import numpy as np
import pytest

from scrawl.vision import to_input

torch = pytest.importorskip("torch")

SHAPES = {(28, 28): (1, 1, 28, 28), (5, 28, 28): (5, 1, 28, 28), (5, 1, 28, 28): (5, 1, 28, 28),
          (0, 28, 28): (0, 1, 28, 28), (3, 32, 20): (3, 1, 32, 20)}
BAD_SHAPES = [(28,), (2, 2, 28, 28), (5, 3, 28, 28), (1, 1, 1, 28, 28), ()]


def images(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.random(shape).astype(dtype)


# ------------------------------------------------------------------------------------------ numpy


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_numpy_shapes_and_dtypes(shape, dtype):
    x = images(shape, dtype)
    out = to_input(x)
    assert isinstance(out, np.ndarray) and out.shape == SHAPES[shape] and out.dtype == np.float32
    assert out.flags.c_contiguous
    flat = x.reshape(SHAPES[shape])
    expected = flat.astype(np.float32) / 255 if dtype == np.uint8 else flat.astype(np.float32)
    assert np.array_equal(out, expected)
    if x.size:
        assert 0 <= out.min() and out.max() <= 1


def test_numpy_uint8_is_exactly_the_old_copies():
    """uint8: export's `float32 / 255` and the training loop's torch `.float().div_(255)`, bit for bit,
    for every one of the 256 values (multiplying by float32(1/255) would differ in 126 of them)."""
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    out = to_input(x)
    export_copy = np.ascontiguousarray(x[:, None], dtype=np.float32) / 255
    training_copy = torch.from_numpy(x).unsqueeze(1).float().div_(255).numpy()
    assert out.tobytes() == export_copy.tobytes() == training_copy.tobytes()


def test_numpy_float_is_exactly_the_recognizers_copy():
    """float: _as_batch's np.asarray(batch, float32), C-contiguous, also from a strided view."""
    x = images((6, 28, 40), np.float64)[:, :, ::2].transpose(0, 2, 1)  # (6, 20, 28), not contiguous
    out = to_input(x)
    assert out.flags.c_contiguous and out.shape == (6, 1, 20, 28)
    assert np.array_equal(out[:, 0], np.asarray(x, dtype=np.float32))


def test_numpy_input_that_fits_is_not_copied():
    x = images((4, 1, 28, 28), np.float32)
    assert to_input(x) is x or np.shares_memory(to_input(x), x)


def test_array_likes_and_bool():
    assert to_input([[0.0, 1.0], [0.5, 0.25]]).shape == (1, 1, 2, 2)
    out = to_input(np.eye(4, dtype=bool))
    assert out.dtype == np.float32 and np.array_equal(out[0, 0], np.eye(4, dtype=np.float32))


@pytest.mark.parametrize("shape", BAD_SHAPES)
def test_numpy_bad_shape_names_the_shape(shape):
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\), got shape " + r"\(" + ", ".join(map(str, shape))):
        to_input(np.zeros(shape, np.float32))


def test_unsupported_dtype_is_a_value_error():
    with pytest.raises(ValueError, match="int64"):
        to_input(np.zeros((2, 28, 28), np.int64))
    with pytest.raises(ValueError, match="int64"):
        to_input(torch.zeros((2, 28, 28), dtype=torch.int64))


def test_numpy_input_does_not_import_torch():
    code = (
        "import sys, numpy as np\n"
        "from scrawl.vision import to_input\n"
        "for shape in [(28, 28), (3, 28, 28), (3, 1, 28, 28)]:\n"
        "    to_input(np.zeros(shape, np.uint8)); to_input(np.zeros(shape, np.float32))\n"
        "try:\n"
        "    to_input(np.zeros((2, 2, 28, 28)))\n"
        "except ValueError:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules, 'to_input imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ------------------------------------------------------------------------------------------ torch


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_torch_shapes_and_dtypes(shape, dtype):
    x = torch.from_numpy(images(shape, dtype))
    out = to_input(x)
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == SHAPES[shape] and out.dtype == torch.float32
    assert out.device == x.device
    # Same numbers as the numpy path.
    assert np.array_equal(out.numpy(), to_input(x.numpy()))


def test_torch_uint8_is_exactly_the_training_loop():
    x = torch.from_numpy(images((7, 28, 28), np.uint8))
    out = to_input(x)
    assert torch.equal(out, x.unsqueeze(1).float().div_(255))
    assert torch.equal(x, torch.from_numpy(images((7, 28, 28), np.uint8)))  # the input is not changed


def test_torch_float_is_exactly_the_old_copies():
    """float32 (N, H, W): cmd_evaluate's and to_tensor's `torch.from_numpy(framed).unsqueeze(1)`;
    a tensor already (N, 1, H, W) float32 comes back as it is."""
    framed = images((4, 28, 28), np.float32)
    assert torch.equal(to_input(torch.from_numpy(framed)), torch.from_numpy(framed).unsqueeze(1))
    ready = torch.from_numpy(images((4, 1, 28, 28), np.float32))
    assert to_input(ready) is ready


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_stays_on_its_device():
    x = torch.from_numpy(images((8, 28, 28), np.uint8)).cuda()
    out = to_input(x)
    assert out.device == x.device and out.dtype == torch.float32
    assert torch.equal(out, x.unsqueeze(1).float().div_(255))


@pytest.mark.parametrize("shape", BAD_SHAPES)
def test_torch_bad_shape_names_the_shape(shape):
    with pytest.raises(ValueError, match=r"got shape \(" + ", ".join(map(str, shape))):
        to_input(torch.zeros(shape))
