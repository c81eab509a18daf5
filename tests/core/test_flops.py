"""Counting multiply-adds with forward hooks (tinyresnet.flops), on nets small enough to count by hand."""
import numpy as np
import pytest

from tinyresnet import manual_seed
from tinyresnet.flops import layer_multiply_adds, multiply_adds
from tinyresnet.models import cifar_resnet

pytestmark = pytest.mark.imagenet


def test_resnet8_counted_layer_by_layer():
    """ResNet-8 (n = 1) on 32x32: every conv's s*s*k*c*9, then the fc's 64*10."""
    manual_seed(0)
    rows = multiply_adds(cifar_resnet(8), np.zeros((2, 3, 32, 32), dtype=np.float32))
    by_hand = [32 * 32 * 16 * 3 * 9,                                # first conv
               32 * 32 * 16 * 16 * 9, 32 * 32 * 16 * 16 * 9,        # stage 1
               16 * 16 * 32 * 16 * 9, 16 * 16 * 32 * 32 * 9,        # stage 2, stride 2 first
               8 * 8 * 64 * 32 * 9, 8 * 8 * 64 * 64 * 9,            # stage 3
               64 * 10]                                             # fc
    assert [macs for _, _, macs in rows] == by_hand, "per image: the batch of 2 must not double the count"
    assert [name for name, _, _ in rows] == ["conv", "blocks.0.conv1", "blocks.0.conv2", "blocks.1.conv1",
                                             "blocks.1.conv2", "blocks.2.conv1", "blocks.2.conv2", "fc"]
    assert rows[3][1] == (32, 16, 16)


def test_counting_leaves_the_model_as_it_was():
    """No hooks left behind, the training mode restored, the running statistics untouched."""
    model = cifar_resnet(8)
    before = model.state_dict()
    multiply_adds(model, np.ones((2, 3, 32, 32), dtype=np.float32))
    assert model.training and all(m.training for m in model.modules())
    assert not any(getattr(m, "_forward_hooks", []) for m in model.modules())
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    model.eval()
    multiply_adds(model, np.ones((2, 3, 32, 32), dtype=np.float32))
    assert not model.training


def test_option_b_projection_is_counted():
    a, b = (multiply_adds(cifar_resnet(8, shortcut=s), np.zeros((1, 3, 32, 32), np.float32)) for s in "AB")
    extra = sum(m for *_, m in b) - sum(m for *_, m in a)
    assert extra == 16 * 16 * 32 * 16 + 8 * 8 * 64 * 32   # the two 1x1 stride-2 projections


def test_layer_multiply_adds_of_a_linear_layer():
    from tinyresnet import Tensor
    from tinyresnet.nn import Linear
    fc = Linear(7, 3)
    assert layer_multiply_adds(fc, fc(Tensor(np.zeros((5, 7), np.float32)))) == 21
