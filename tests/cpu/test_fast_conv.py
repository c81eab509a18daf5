"""tinyresnet/cpu/conv.py: the convolution in chunks, on every core, with the flipped-kernel
backward pass, must give the numbers of the core's definitions in tinyresnet/conv.py."""
import numpy as np
import pytest

from tinyresnet import conv
from tinyresnet.cpu import conv as fast_conv
from tinyresnet.im2col import output_size

from conv_shapes import CONFIGS, config_id

pytestmark = pytest.mark.conv


@pytest.fixture(params=["one chunk", "a chunk per image"])
def chunking(request, monkeypatch):
    """fast_conv's chunks: the whole (tiny) batch in one, or one image each (then they run on threads)."""
    if request.param == "a chunk per image":
        monkeypatch.setattr(fast_conv, "CHUNK_BYTES", 1)
    return request.param


@pytest.mark.parametrize("part", ["forward", "weight_grad", "input_grad"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_fast_path_equals_the_definition(cfg, part, chunking, rng):
    """fast_conv (the CPU's chunked, threaded, flipped-kernel versions) must give the numbers of
    conv.py's definitions: out = cols @ w2, dw2 = colsᵀ @ g2, dx = col2im(g2 @ w2ᵀ)."""
    x_shape, w_shape, stride, padding = cfg
    k, c, r, s = w_shape
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    ho, wo = output_size(x_shape[2], r, stride, padding), output_size(x_shape[3], s, stride, padding)
    g = rng.standard_normal((x_shape[0], k, ho, wo))
    args = {"forward": (x, w, stride, padding), "weight_grad": (x, g, w_shape, stride, padding),
            "input_grad": (g, w, x_shape, stride, padding)}[part]
    fast, definition = getattr(fast_conv, part), getattr(conv, part)
    np.testing.assert_allclose(fast(*args), definition(*args), rtol=1e-10, atol=1e-10,
                               err_msg=f"fast_conv.{part} differs from the core's conv.{part} for "
                                       f"{config_id(cfg)} ({chunking})")


@pytest.mark.parametrize("need_dx", [True, False], ids=["dx and dw", "dw only"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_fast_backward_equals_the_definitions(cfg, need_dx, chunking, rng):
    """fast_conv.backward (which, at stride 1, reads both gradients off one unfolding of g) must
    give conv.py's dx = col2im(g2 @ w2ᵀ) and dw2 = colsᵀ @ g2."""
    x_shape, w_shape, stride, padding = cfg
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    ho = output_size(x_shape[2], w_shape[2], stride, padding)
    wo = output_size(x_shape[3], w_shape[3], stride, padding)
    g = rng.standard_normal((x_shape[0], w_shape[0], ho, wo))
    fast = fast_conv.backward(x, g, w, stride, padding, need_dx)
    definition = conv.backward(x, g, w, stride, padding, need_dx)
    for name, got, want in zip(("dx", "dw"), fast, definition):
        if want is None:
            assert got is None, f"fast_conv.backward returned a {name} that was not asked for"
            continue
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10,
                                   err_msg=f"fast_conv.backward's {name} differs from the definition "
                                           f"for {config_id(cfg)} ({chunking}); at stride 1 it is read "
                                           "off the unfolded g, with the kernel offsets flipped")


def test_float32_stays_float32_on_the_fast_path(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    for part, out in [("forward", fast_conv.forward(x, w, 1, 1)),
                      ("weight_grad", fast_conv.weight_grad(x, g, w.shape, 1, 1)),
                      ("input_grad", fast_conv.input_grad(g, w, x.shape, 1, 1)),
                      ("backward's dx", fast_conv.backward(x, g, w, 1, 1)[0]),
                      ("backward's dw", fast_conv.backward(x, g, w, 1, 1)[1])]:
        assert out.dtype == np.float32, f"fast_conv.{part} returned {out.dtype} for float32 inputs"
