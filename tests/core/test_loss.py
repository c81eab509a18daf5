"""Lesson 04: softmax cross-entropy, computed stably, with gradient (softmax - onehot) / N."""
import warnings

import numpy as np
import pytest
import standin

from tinyresnet import Tensor, gradcheck
from tinyresnet.functional import cross_entropy

from conftest import host

pytestmark = pytest.mark.loss


def by_hand(logits, labels):
    """-log softmax(logits)[label], averaged over the batch, the direct (unstable) way."""
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return -np.log(p[np.arange(len(labels)), labels]).mean()


def test_backward(xp, rng):
    logits = xp.asarray(rng.standard_normal((5, 4)) * 2)
    labels = xp.asarray(np.array([0, 3, 1, 1, 2]))
    gradcheck(cross_entropy, logits, labels, name="cross_entropy")


def test_backward_with_upstream_scale(xp, rng):
    """The loss is usually the root (upstream 1), but it may be scaled or summed with others."""
    logits = xp.asarray(rng.standard_normal((3, 10)))
    labels = xp.asarray(np.array([9, 0, 4]))
    gradcheck(lambda z: cross_entropy(z, labels) * 2.5 + cross_entropy(z * 0.5, labels), logits,
              name="2.5 * cross_entropy(z) + cross_entropy(z / 2)")


def test_value_equals_minus_log_softmax(xp, rng):
    logits = rng.standard_normal((6, 10)) * 3
    labels = rng.integers(0, 10, 6)
    loss = cross_entropy(Tensor(xp.asarray(logits)), xp.asarray(labels))
    assert loss.shape == (), f"the loss is a scalar, got shape {loss.shape}"
    assert loss.item() == pytest.approx(by_hand(logits, labels), rel=1e-12), (
        f"cross_entropy gives {loss.item():.6f}, -mean(log softmax(z)[label]) is {by_hand(logits, labels):.6f}: "
        "a mean over the batch, not a sum, of minus the log-probability of each image's label")


def test_uniform_logits_give_log_of_class_count(xp):
    loss = cross_entropy(Tensor(xp.zeros((4, 10))), xp.asarray(np.array([0, 1, 2, 3])))
    assert loss.item() == pytest.approx(np.log(10), rel=1e-6), "knowing nothing costs log(K) nats"


def test_gradient_is_softmax_minus_onehot_over_n(xp, rng):
    logits = rng.standard_normal((4, 3))
    labels = np.array([2, 0, 1, 2])
    z = Tensor(xp.asarray(logits), requires_grad=True)
    cross_entropy(z, xp.asarray(labels)).backward()
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = (p - np.eye(3)[labels]) / 4
    np.testing.assert_allclose(host(z.grad), expected, rtol=1e-12, atol=1e-14, err_msg=(
        "cross_entropy's dL/dz must be (softmax(z) - onehot(labels)) / N: check the division by the "
        "batch size N and that the label's column gets the -1"))


def test_labels_may_be_a_tensor(xp, rng):
    logits = xp.asarray(rng.standard_normal((3, 4)))
    labels = xp.asarray(np.array([1, 2, 3]))
    a = cross_entropy(Tensor(logits), labels).item()
    b = cross_entropy(Tensor(logits), Tensor(labels)).item()
    assert a == b


@pytest.mark.parametrize("scale", [1e4, -1e4], ids=["+1e4", "-1e4"])
def test_huge_logits_stay_finite(scale, xp, rng):
    """exp(1e4) overflows; subtracting each row's max first keeps everything finite."""
    logits = (rng.standard_normal((4, 5)) * scale).astype(np.float32)
    logits[:, 0] = scale  # a certain, right or wrong, answer
    labels = np.array([0, 1, 2, 0])
    z = Tensor(xp.asarray(logits), requires_grad=True)
    loss = cross_entropy(z, xp.asarray(labels))
    loss.backward()
    assert np.isfinite(loss.item()), f"loss is {loss.item()} for logits of size {scale:g}"
    assert np.all(np.isfinite(host(z.grad))), "the gradient has nan/inf for huge logits"
    assert z.grad.dtype == np.float32


def test_huge_logits_give_the_right_value(xp):
    z = Tensor(xp.asarray(np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], dtype=np.float32)))
    right = cross_entropy(z, xp.asarray(np.array([0, 0]))).item()
    wrong = cross_entropy(z, xp.asarray(np.array([1, 1]))).item()
    assert right == pytest.approx(0.0, abs=1e-6), "confidently right costs nothing"
    assert wrong == pytest.approx(1e4, rel=1e-6), "confidently wrong by 1e4 costs 1e4 nats"


@pytest.mark.parametrize("labels, error, message", [
    (np.array([0.0, 1.0, 2.0]), TypeError, r"integer class labels, got dtype float64"),
    (np.array([[0], [1], [2]]), ValueError, r"labels of shape \(3,\), got \(3, 1\)"),
    (np.array([0, 1]), ValueError, r"labels of shape \(3,\), got \(2,\)"),
], ids=["float", "column", "too-few"])
def test_bad_labels_raise_clearly(labels, error, message, xp):
    with pytest.raises(error, match=message):
        cross_entropy(Tensor(xp.zeros((3, 4))), xp.asarray(labels))


OUT_OF_RANGE = {"too-big": (np.array([0, 1, 4]), r"labels must lie in \[0, 4\), got values from 0 to 4"),
                "negative": (np.array([0, -1, 2]), r"labels must lie in \[0, 4\), got values from -1 to 2")}


@pytest.mark.parametrize("labels, message", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_labels_out_of_range_raise_on_the_host(labels, message):
    with pytest.raises(ValueError, match=message):
        cross_entropy(Tensor(np.zeros((3, 4))), labels)


@pytest.mark.parametrize("labels, message", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_labels_out_of_range_on_the_device_give_nan(labels, message, device, xp):
    """Checking device labels would wait for the GPU, and CuPy wraps a bad index around: a plausible
    wrong loss. Instead the loss and its gradient are NaN, which the training loop stops on."""
    if device == "cpu":
        pytest.skip("host labels raise ValueError (test_labels_out_of_range_raise_on_the_host)")
    logits = Tensor(xp.zeros((3, 4)), requires_grad=True)
    loss = cross_entropy(logits, xp.asarray(labels))
    loss.backward()
    assert np.isnan(loss.item()), f"labels {labels.tolist()} with 4 classes: the loss should be NaN"
    assert np.isnan(host(logits.grad)).all(), "and so should every gradient"


@pytest.mark.parametrize("shape", [(0, 10), (3, 0)], ids=["no-examples", "no-classes"])
def test_empty_logits_raise_clearly(shape, xp):
    """No examples: a mean over nothing, NaN with two warnings before (issue 31 item 5). No classes:
    NumPy's "zero-size array to reduction operation maximum", which did not say where it came from."""
    labels = xp.asarray(np.zeros(shape[0], dtype=np.int64))
    with pytest.raises(ValueError, match=rf"cross_entropy needs at least one example and one class, "
                                         rf"got logits of shape \({shape[0]}, {shape[1]}\)"):
        cross_entropy(Tensor(xp.zeros(shape)), labels)


def with_infinity(where):
    """(3, 4) logits, row 1 made infinite: one +inf, or -inf everywhere."""
    logits = np.zeros((3, 4))
    if where == "+inf":
        logits[1, 2] = np.inf
    else:
        logits[1] = -np.inf
    return logits


INFINITE = {"+inf": r"row 1 of the logits holds \+inf", "all -inf": r"row 1 of the logits is all -inf"}
INFINITE_IDS = ["plus-inf", "all-minus-inf"]


@pytest.mark.parametrize("where, message", INFINITE.items(), ids=INFINITE_IDS)
def test_infinite_logits_raise_on_the_host(where, message):
    """A row with +inf, or all -inf, has no softmax: exp() of inf - inf. Before: a NaN loss and
    RuntimeWarnings (issue 31 item 5). Now a ValueError, and no warning on the way to it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=rf"cross_entropy: {message}, which has no softmax"):
            cross_entropy(Tensor(with_infinity(where)), np.array([0, 1, 2]))


@pytest.mark.parametrize("where", INFINITE, ids=INFINITE_IDS)
def test_infinite_logits_on_the_device_give_nan_without_a_wait(where, device, xp):
    """On the GPU the check would make the host wait for the device every step; it is not made,
    and the NaN loss stops the training loop at its next reading, as a diverged run does."""
    if device == "cpu":
        pytest.skip("host logits raise ValueError (test_infinite_logits_raise_on_the_host)")
    z = Tensor(xp.asarray(with_infinity(where)), requires_grad=True)
    with standin.recording() as record, np.errstate(invalid="ignore"):  # the stand-in's NumPy warns, CuPy not
        loss = cross_entropy(z, xp.asarray(np.array([0, 1, 2])))
        loss.backward()
    assert not record.syncs, record.syncs
    assert np.isnan(loss.item())


def test_nan_logits_pass_on_as_a_nan_loss_quietly(xp):
    """NaN logits come from upstream, a diverged net: like every op, cross_entropy passes the NaN on,
    with no warning, and the training loop stops on the NaN loss with its one-line message."""
    logits = np.zeros((3, 4))
    logits[1, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = cross_entropy(Tensor(xp.asarray(logits)), xp.asarray(np.array([0, 1, 2])))
    assert np.isnan(loss.item())


def test_a_minus_inf_logit_is_a_probability_of_zero(xp):
    """-inf is a legitimate logit (a masked class), as in PyTorch: it is only a row of nothing else
    that has no softmax."""
    logits = xp.asarray(np.array([[0.0, -np.inf, 0.0]]))
    z = Tensor(logits, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = cross_entropy(z, xp.asarray(np.array([0])))
        loss.backward()
        assert loss.item() == pytest.approx(np.log(2))
        assert host(z.grad).tolist() == [[-0.5, 0.0, 0.5]]
        assert cross_entropy(Tensor(logits), xp.asarray(np.array([1]))).item() == np.inf  # certain and wrong


def test_logits_must_be_two_dimensional(xp):
    with pytest.raises(ValueError, match=r"logits of shape \(N, classes\)"):
        cross_entropy(Tensor(xp.zeros((3, 4, 1))), xp.asarray(np.array([0, 1, 2])))


@pytest.mark.torch
def test_matches_pytorch(torch, xp, rng):
    logits = (rng.standard_normal((8, 10)) * 3).astype(np.float32)
    labels = rng.integers(0, 10, 8)
    z = Tensor(xp.asarray(logits), requires_grad=True)
    loss = cross_entropy(z, xp.asarray(labels))
    loss.backward()

    tz = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tz, torch.tensor(labels))
    tloss.backward()

    assert loss.dtype == np.float32
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-5), "cross_entropy value differs from PyTorch"
    np.testing.assert_allclose(host(z.grad), tz.grad.numpy(), rtol=1e-4, atol=1e-6,
                               err_msg="cross_entropy gradient differs from PyTorch")
