"""The check cells of 04_training.ipynb reject wrong code, and say why.

tests/lessons/test_lessons.py proves that the worked solutions pass every check. This file
proves the other half for that lesson: planted wrong versions of
`softmax_cross_entropy`, `sgd_momentum_step`, `train_epoch` and `evaluate` make their checks
print "✗ FAILED" with a message that names the slip, and return False.
"""
import contextlib

import numpy as np
import pytest

from checks import training
from checks.harness import FAILED, NOT_WRITTEN, PASSED
from solutions.loop import evaluate, train_epoch
from tinyresnet import Tensor, no_grad
from tinyresnet import functional as F

from planted import rejects, verdict

pytestmark = pytest.mark.lessons



# ------------------------------------------------------------------ the loss and the optimizer step

def sgd_no_weight_decay(w, grad, velocity, lr, momentum, weight_decay):
    v = momentum * velocity + grad
    return w - lr * v, v


def sgd_lr_in_velocity(w, grad, velocity, lr, momentum, weight_decay):
    v = momentum * velocity - lr * (grad + weight_decay * w)
    return w + v, v


def sgd_scalar_velocity(w, grad, velocity, lr, momentum, weight_decay):
    g = grad + weight_decay * w
    v = momentum * velocity + g
    return w - lr * v, float(v.sum())


def sgd_in_place(w, grad, velocity, lr, momentum, weight_decay):
    velocity *= momentum
    velocity += grad + weight_decay * w
    w -= lr * velocity                      # right numbers, but the caller's arrays are changed
    return w, velocity


@pytest.mark.parametrize("fn, says", [
    (sgd_in_place, ["changed the w it was given", "return new arrays"]),
    (sgd_no_weight_decay, ["ignores weight decay"]),
    (sgd_lr_in_velocity, ["includes the learning rate"]),
    (sgd_scalar_velocity, ["new_velocity = float", "array of shape (3,)"]),
])
def test_sgd_momentum_step_rejects(capsys, fn, says):
    rejects(capsys, training.check_sgd_momentum_step, fn, says=says)


def cross_entropy_naive(logits, labels):
    """No max subtracted: exp(1000) overflows."""
    n = len(labels)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(n), labels]).mean()
    p[np.arange(n), labels] -= 1
    return loss, p / n


def cross_entropy_log_of_p(logits, labels):
    """The max subtracted, but the loss taken as log(p_y): p_y underflows to 0 at scores of ±1000."""
    n = len(labels)
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        loss = -np.log(p[np.arange(n), labels]).mean()
    p[np.arange(n), labels] -= 1
    return loss, p / n


def cross_entropy_gradient_of_the_sum(logits, labels):
    from solutions.loss import softmax_cross_entropy
    loss, dlogits = softmax_cross_entropy(logits, labels)
    return loss, dlogits * len(labels)


def cross_entropy_per_image(logits, labels):
    """Shape slip: one loss per image instead of the batch mean."""
    from solutions.loss import softmax_cross_entropy
    _, dlogits = softmax_cross_entropy(logits, labels)
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels], dlogits


def cross_entropy_onehot_forgotten(logits, labels):
    from solutions.loss import softmax_cross_entropy
    loss, dlogits = softmax_cross_entropy(logits, labels)
    dlogits[np.arange(len(labels)), labels] += 1 / len(labels)
    return loss, dlogits


@pytest.mark.parametrize("fn, says", [
    (cross_entropy_naive, ["exp() overflowed", "scores around ±1000"]),
    (cross_entropy_log_of_p, ["underflowed to 0", "log-softmax"]),
    (cross_entropy_gradient_of_the_sum, ["gradient of the SUM", "divide by N"]),
    (cross_entropy_onehot_forgotten, ["one-hot label is not subtracted"]),
    (cross_entropy_per_image, ["the loss has shape (4,)", "one number"]),
])
def test_softmax_cross_entropy_rejects(capsys, fn, says):
    rejects(capsys, training.check_softmax_cross_entropy, fn, says=says)


# ------------------------------------------------------------------ the training loop

def step(model, opt, x, y, zero_grad=True):
    """One training step, as the worked loop takes it; (batch mean loss, mistakes)."""
    logits = model(Tensor(x))
    loss = F.cross_entropy(logits, y)
    if zero_grad:
        opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item(), int((logits.data.argmax(axis=1) != y).sum())


def epoch_with(model, opt, batches, zero_grad=True, train_mode=True):
    """A training loop with switches for two slips; returns (losses, mistakes, sizes) of its batches."""
    if train_mode:
        model.train()
    losses, wrong, sizes = [], 0, []
    for x, y in batches:
        loss, mistakes = step(model, opt, x, y, zero_grad)
        losses.append(loss)
        wrong += mistakes
        sizes.append(len(y))
    return losses, wrong, sizes


def train_without_zero_grad(model, opt, batches):
    losses, wrong, sizes = epoch_with(model, opt, batches, zero_grad=False)
    return np.dot(losses, sizes) / sum(sizes), wrong / sum(sizes)


def train_in_eval_mode(model, opt, batches):
    """model.train() forgotten: batch norm runs as evaluate left it."""
    losses, wrong, sizes = epoch_with(model, opt, batches, train_mode=False)
    return np.dot(losses, sizes) / sum(sizes), wrong / sum(sizes)


def train_counting_accuracy(model, opt, batches):
    losses, wrong, sizes = epoch_with(model, opt, batches)
    return np.dot(losses, sizes) / sum(sizes), 1 - wrong / sum(sizes)


def train_mean_of_batch_means(model, opt, batches):
    losses, wrong, sizes = epoch_with(model, opt, batches)
    return np.mean(losses), wrong / sum(sizes)


def train_zero_grad_after_backward(model, opt, batches):
    """opt.zero_grad() between backward and step: every step finds no gradient."""
    model.train()
    for x, y in batches:
        loss = F.cross_entropy(model(Tensor(x)), y)
        loss.backward()
        opt.zero_grad()
        opt.step()
    return loss.item(), 0.5


def train_returning_the_loss_tensor(model, opt, batches):
    model.train()
    total, images, wrong = 0, 0, 0
    for x, y in batches:
        logits = model(Tensor(x))
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total = total + loss * len(y)        # a Tensor: .item() forgotten
        images += len(y)
        wrong += int((logits.data.argmax(axis=1) != y).sum())
    return total * (1 / images), wrong / images


def train_scoring_again_after_the_step(model, opt, batches):
    """Counts mistakes with a second forward pass after the step: batch norm's statistics move twice."""
    model.train()
    losses, wrong, sizes = [], 0, []
    for x, y in batches:
        loss, _ = step(model, opt, x, y)
        with no_grad():
            wrong += int((model(Tensor(x)).data.argmax(axis=1) != y).sum())
        losses.append(loss)
        sizes.append(len(y))
    return float(np.dot(losses, sizes) / sum(sizes)), wrong / sum(sizes)


def train_counting_first(model, opt, batches):
    """Goes through batches once to count the images: a one-pass iterator is then empty."""
    images = sum(len(y) for _, y in batches)
    losses, wrong, sizes = epoch_with(model, opt, batches)
    return float(np.dot(losses, sizes) / max(images, 1)), wrong / max(images, 1)


def train_only_the_loss(model, opt, batches):
    """Shape slip: one number back, not (mean loss, error rate)."""
    return train_epoch(model, opt, batches)[0]


@pytest.mark.parametrize("fn, says", [
    (train_without_zero_grad, ["opt.zero_grad() is missing", "gradients accumulate", "epoch 1"]),
    (train_in_eval_mode, ["batch norm ran in eval mode", "model.train()"]),
    (train_counting_accuracy, ["this is the accuracy", "error rate"]),
    (train_mean_of_batch_means, ["weight each batch's mean loss by its number of images",
                                 "epoch 2", "batches of 9, 9, 5"]),
    (train_zero_grad_after_backward, ["the weights did not move", "before loss.backward()"]),
    (train_returning_the_loss_tensor, ["mean loss as a Tensor", ".item()"]),
    (train_only_the_loss, ["must return a tuple (mean loss, error rate)", "float"]),
    (train_scoring_again_after_the_step, ["forward passes for", "moves batch norm's running statistics again"]),
    (train_counting_first, ["never called", "one-pass iterator"]),
])
def test_train_epoch_rejects(capsys, fn, says):
    rejects(capsys, training.check_train_epoch, fn, says=says)


def evaluate_with(model, batches, eval_mode=True, graph=False):
    """(losses, mistakes, sizes) of the batches, with switches for two slips."""
    if eval_mode:
        model.eval()
    losses, wrong, sizes = [], 0, []
    with contextlib.nullcontext() if graph else no_grad():
        for x, y in batches:
            logits = model(Tensor(x))
            losses.append(F.cross_entropy(logits, y).item())
            wrong += int((logits.data.argmax(axis=1) != y).sum())
            sizes.append(len(y))
    return losses, wrong, sizes


def evaluate_in_train_mode(model, batches):
    """model.eval() forgotten: batch statistics used, running statistics moved."""
    losses, wrong, sizes = evaluate_with(model, batches, eval_mode=False)
    return np.dot(losses, sizes) / sum(sizes), wrong / sum(sizes)


def evaluate_building_a_graph(model, batches):
    """no_grad() forgotten."""
    losses, wrong, sizes = evaluate_with(model, batches, graph=True)
    return np.dot(losses, sizes) / sum(sizes), wrong / sum(sizes)


def evaluate_counting_accuracy(model, batches):
    losses, wrong, sizes = evaluate_with(model, batches)
    return np.dot(losses, sizes) / sum(sizes), 1 - wrong / sum(sizes)


def evaluate_in_percent(model, batches):
    losses, wrong, sizes = evaluate_with(model, batches)
    return np.dot(losses, sizes) / sum(sizes), 100 * wrong / sum(sizes)


def evaluate_mean_of_batch_means(model, batches):
    """The loss not averaged by images: the short last batch counts as much as a full one."""
    losses, wrong, sizes = evaluate_with(model, batches)
    return np.mean(losses), wrong / sum(sizes)


def evaluate_summed_loss(model, batches):
    losses, wrong, sizes = evaluate_with(model, batches)
    return np.dot(losses, sizes), wrong / sum(sizes)


def evaluate_then_train_mode(model, batches):
    loss, error = evaluate(model, batches)
    model.train()
    return loss, error


def evaluate_with_backward(model, batches):
    """A training step's habits in evaluate: backward() fills .grad."""
    model.eval()
    for x, y in batches:
        F.cross_entropy(model(Tensor(x)), y).backward()
    return evaluate(model, batches)


@pytest.mark.parametrize("fn, says", [
    (evaluate_in_train_mode, ["batch norm ran in training mode", "moved its running statistics",
                               "model.eval()"]),
    (evaluate_building_a_graph, ["recorded a graph", "no_grad()"]),
    (evaluate_counting_accuracy, ["this is the accuracy"]),
    (evaluate_in_percent, ["a percentage", "(0.25, not 25)"]),
    (evaluate_mean_of_batch_means, ["the last batch has only 3 images", "weight each batch's mean loss"]),
    (evaluate_summed_loss, ["this is a sum", "divide"]),
    (evaluate_with_backward, ["evaluate changed the model", "no loss.backward()"]),
    (evaluate_then_train_mode, ["left the model in training mode"]),
])
def test_evaluate_rejects(capsys, fn, says):
    rejects(capsys, training.check_evaluate, fn, says=says)


@pytest.mark.parametrize("check, solution", [(training.check_train_epoch, train_epoch),
                                             (training.check_evaluate, evaluate)])
def test_the_loop_solutions_pass_and_a_stub_is_not_written_yet(capsys, check, solution):
    ok, out = verdict(capsys, check, solution)
    assert ok is True and out.startswith(PASSED), out

    def stub(*args):
        raise NotImplementedError("your turn")
    stub.__name__ = solution.__name__
    ok, out = verdict(capsys, check, stub)
    assert ok is False and NOT_WRITTEN in out, out
