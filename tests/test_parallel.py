"""The threaded copies and adds behind im2col/col2im give exactly the plain results."""
import numpy as np
import pytest

from tinyresnet import parallel

pytestmark = pytest.mark.conv


@pytest.mark.parametrize("n", [1, 2, 3, 7, 128])
def test_copy_into_equals_plain_copy(n, rng):
    src = rng.standard_normal((n, 5, 6, 3)).astype(np.float32)
    view = src[:, ::2, 1:]  # a strided source, as im2col copies
    dst = np.empty(view.shape, np.float32)
    parallel.copy_into(dst, view)
    np.testing.assert_array_equal(dst, view)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 128])
def test_add_into_equals_plain_add(n, rng):
    base = rng.standard_normal((n, 6, 6, 4)).astype(np.float32)
    values = rng.standard_normal((n, 4, 4, 4)).astype(np.float32)
    expected = base.copy()
    expected[:, 1:5, 2:6] += values
    parallel.add_into(base[:, 1:5, 2:6], values)  # a strided destination, as col2im adds
    np.testing.assert_array_equal(base, expected)


def test_errors_in_a_worker_reach_the_caller():
    with pytest.raises(ValueError):
        parallel.copy_into(np.empty((8, 3)), np.empty((8, 4)))
