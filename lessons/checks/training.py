"""Lesson 04 (04_training.ipynb): softmax cross-entropy, one step of SGD with momentum, and the
training loop (train_epoch, evaluate).

The learner's loss and gradient are compared with tinyresnet.functional.cross_entropy and
gradchecked; the learner's step runs side by side with tinyresnet.optim.SGD through a
learning-rate schedule with drops, and every step is compared. The learner's loop trains a
tiny net beside an identical one trained by tinyresnet.train.train_step (same seed, same
batches, same schedule): the weights must agree after every epoch. The learner's evaluate
is compared with tinyresnet.train.evaluate.
"""
import numpy as np

from tinyresnet import Tensor, gradcheck, no_grad
from tinyresnet import functional as F
from tinyresnet.data import Loader, per_pixel_mean
from tinyresnet.functional import cross_entropy
from tinyresnet.nn import BatchNorm2d, Conv2d, Linear, Module, ReLU, Sequential, manual_seed
from tinyresnet.optim import SGD, paper_schedule
from tinyresnet.train import evaluate as library_evaluate
from tinyresnet.train import train_step

from .harness import Mismatch, case, check, describe, returned

SHAPE_HINT = ("w, grad and velocity all have one shape, and so do new_w and new_velocity: the update "
              "is elementwise, with no @ and no sums.")
SGD_SHAPES = [(3,), (4, 5), (2, 3, 3, 3)]
SGD_LRS = [0.1, 0.1, 0.1, 0.01, 0.01, 0.001]     # a step schedule: two formulations part at a drop
SGD_SETTINGS = [(0.9, 1e-4), (0.9, 0.05), (0.0, 0.0), (0.5, 0.01)]   # (momentum, weight_decay)


def _sgd_hint(w, g, v, lr, momentum, wd, new_w, new_v, step):
    """Which common slip reproduces the learner's numbers, if any."""
    def near(a, b):
        return np.allclose(a, b, rtol=1e-7, atol=1e-10)
    full = g + wd * w
    if near(new_v, momentum * v + g) and not near(new_v, momentum * v + full):
        return ("new_velocity ignores weight decay: add weight_decay * w to the gradient first "
                "(g = grad + weight_decay * w).")
    if near(new_w, w - lr * full) and momentum and step:
        return "new_w = w - lr * g does not use the velocity: step with the new velocity, w - lr * new_velocity."
    if near(new_v, momentum * v - lr * full) and not near(new_v, momentum * v + full):
        return ("your velocity includes the learning rate (v = momentum * v - lr * g, w = w + v). That is the "
                "other common form; here, as in PyTorch and tinyresnet, v = momentum * v + g is a sum of "
                "gradients and lr multiplies it at the step: w = w - lr * v. The two agree until the "
                "learning rate changes, and differ after every drop of the schedule.")
    if near(new_w, w + lr * (momentum * v + full)):
        return "the step goes uphill: subtract lr * new_velocity from w."
    if near(new_w, w - lr * (momentum * v + g) - lr * wd * w) and wd:
        return ("weight decay is applied to w outside the velocity; in this optimizer it is part of the "
                "gradient, so it goes into the velocity too: g = grad + weight_decay * w, v = momentum * v + g.")
    return ("write the three lines one by one: g = grad + weight_decay * w; "
            "new_velocity = momentum * velocity + g; new_w = w - lr * new_velocity.")


@check("sgd_momentum_step", shape_hint=SHAPE_HINT)
def check_sgd_momentum_step(sgd_momentum_step):
    rng, steps = np.random.default_rng(0), 0
    for momentum, wd in SGD_SETTINGS:
        for shape in SGD_SHAPES:
            w = rng.standard_normal(shape)
            v = np.zeros(shape)
            p = Tensor(w.copy(), requires_grad=True)      # float64, so that both sides agree to rounding
            opt = SGD([p], lr=SGD_LRS[0], momentum=momentum, weight_decay=wd)
            for step, lr in enumerate(SGD_LRS):
                g = rng.standard_normal(shape)
                given = [w.copy(), g.copy(), v.copy()]
                with case(f"step {step + 1} (lr {lr}, momentum {momentum}, weight_decay {wd}, shape {shape})"):
                    result = sgd_momentum_step(*given, lr, momentum, wd)
                for name, mine, before in zip(("w", "grad", "velocity"), given, (w, g, v)):
                    if not np.array_equal(mine, before):
                        raise Mismatch(f"step {step + 1}: sgd_momentum_step changed the {name} it was given.\n"
                                       "hint: return new arrays (new_w = w - lr * new_velocity), not w -= ...; the "
                                       "text asks you to leave the arrays you are given as they are.")
                new_w, new_v = (np.asarray(a, dtype=np.float64) for a in returned(
                    result, "sgd_momentum_step", [("new_w", shape), ("new_velocity", shape)]))
                p.grad, opt.lr = g.copy(), lr
                opt.step()
                expected_w, expected_v = p.data.copy(), opt.velocity[0].copy()
                for name, mine, theirs in (("new_velocity", new_v, expected_v), ("new_w", new_w, expected_w)):
                    if not np.allclose(mine, theirs, rtol=1e-9, atol=1e-12):
                        i = np.unravel_index(np.argmax(np.abs(mine - theirs)), shape)
                        raise Mismatch(
                            f"step {step + 1} (lr {lr}, momentum {momentum}, weight_decay {wd}, shape {shape}): "
                            f"{name}[{', '.join(map(str, i))}] is {mine[i]:.8g}, tinyresnet.optim.SGD has "
                            f"{theirs[i]:.8g}\nhint: {_sgd_hint(w, g, v, lr, momentum, wd, new_w, new_v, step)}")
                w, v = new_w, new_v
                steps += 1
    return (f"{steps} steps on {len(SGD_SHAPES)} shapes, {len(SGD_SETTINGS)} (momentum, weight decay) "
            "settings and an LR schedule with drops: identical to tinyresnet.optim.SGD")


# ------------------------------------------------------------------ softmax cross-entropy

# (what, N, K, logit scale): the last two are the ones that break a naive exp()
CROSS_ENTROPY_CASES = [("4 images, 10 classes", 4, 10, 3.0), ("1 image, 2 classes", 1, 2, 1.0),
                       ("6 images, 10 classes, all scores equal", 6, 10, 0.0),
                       ("3 images, 5 classes, scores around ±1000", 3, 5, 1000.0)]
CROSS_ENTROPY_SHAPE_HINT = ("logits are (N, K) and labels (N,): take max and sum over axis 1 with "
                            "keepdims=True so that they broadcast against (N, K); p[np.arange(N), labels] "
                            "picks each image's right class; loss is one number, dlogits (N, K).")


def cross_entropy_case(what, n, k, scale):
    rng = np.random.default_rng(n * 100 + k)
    logits = rng.standard_normal((n, k)) * scale if scale else np.full((n, k), 0.7)
    return logits, rng.integers(0, k, n)


def library_cross_entropy(logits, labels):
    """(loss, dlogits) from tinyresnet.functional.cross_entropy."""
    t = Tensor(logits.copy(), requires_grad=True)
    loss = cross_entropy(t, labels)
    loss.backward()
    return loss.item(), t.grad


def _cross_entropy_slip(loss, dlogits, expected_loss, expected_grad, logits, labels):
    """The usual slip that reproduces the learner's numbers."""
    n = len(labels)
    if not np.isfinite(loss) and np.all(np.isfinite(dlogits)):
        return ("the loss is infinite but dlogits is not: the shift by the largest score kept exp() finite, "
                "but the right class's probability underflowed to 0, and -log(0) = inf. Take the "
                "log-softmax directly, log p = (z - m) - log(sum(exp(z - m))), not the log of the softmax.")
    if not np.isfinite(loss) or not np.all(np.isfinite(dlogits)):
        return ("exp() overflowed (e^1000 is inf in any float type): subtract each row's largest score "
                "first; softmax(z - max z) = softmax(z), and the exponents are then <= 0.")
    if np.isclose(loss, n * expected_loss) and n > 1:
        return "the loss is summed over the batch; it is the mean: divide by N."
    if np.isclose(loss, -expected_loss):
        return "the sign: the loss is MINUS the log-probability of the right class (a positive number)."
    p = np.exp(logits - logits.max(axis=0, keepdims=True))
    p /= p.sum(axis=0, keepdims=True)
    if np.isclose(loss, -np.log(p[np.arange(n), labels]).mean()) and n > 1:
        return "the softmax runs over axis 0 (the images); it runs over the classes, axis 1."
    if not np.isclose(loss, expected_loss, rtol=1e-6, atol=1e-9):
        return "the loss is the mean over the batch of -log softmax(logits)[n, labels[n]]."
    if np.allclose(dlogits, n * expected_grad) and n > 1:
        return "dlogits is the gradient of the SUM over the batch: the loss is a mean, so divide by N."
    if np.allclose(dlogits, -expected_grad):
        return "the sign of dlogits: it is softmax minus the one-hot label, not the other way round."
    onehot = np.zeros_like(logits)
    onehot[np.arange(n), labels] = 1
    if np.allclose(dlogits, expected_grad + onehot / n):
        return "the one-hot label is not subtracted: d(-log p_y)/dz_k = p_k - [k == y]."
    return ("derive d(-log p_y)/dz_k in two cases, k == y and k != y; both come out as "
            "p_k minus something.")


@check("softmax_cross_entropy", shape_hint=CROSS_ENTROPY_SHAPE_HINT)
def check_softmax_cross_entropy(softmax_cross_entropy):
    worst = 0.0
    for what, n, k, scale in CROSS_ENTROPY_CASES:
        logits, labels = cross_entropy_case(what, n, k, scale)
        expected_loss, expected_grad = library_cross_entropy(logits, labels)
        with case(what):
            result = softmax_cross_entropy(logits.copy(), labels.copy())
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise Mismatch(f"softmax_cross_entropy must return a tuple (loss, dlogits), got {describe(result)}")
        loss, dlogits = result
        if np.ndim(loss) != 0:
            raise Mismatch(f"for {what} the loss has shape {np.shape(loss)}; it is one number, the mean "
                           "over the batch of each image's loss.")
        with case(what):
            (dlogits,) = returned(np.asarray(dlogits, dtype=np.float64), "softmax_cross_entropy",
                                  [("dlogits", (n, k))])
        loss = float(loss)
        if not (np.isclose(loss, expected_loss, rtol=1e-6, atol=1e-9)
                and np.allclose(dlogits, expected_grad, rtol=1e-6, atol=1e-9)):
            raise Mismatch(f"for {what}: your loss {loss:.6g}, tinyresnet's cross_entropy {expected_loss:.6g}; "
                           f"dlogits[0] yours {np.array2string(dlogits[0], precision=4)}, expected "
                           f"{np.array2string(expected_grad[0], precision=4)}\n"
                           f"hint: {_cross_entropy_slip(loss, dlogits, expected_loss, expected_grad, logits, labels)}")

        def op(t):
            loss, grad = softmax_cross_entropy(t.data, labels)
            return Tensor.from_op(np.asarray(loss, dtype=t.dtype), (t,), lambda g: (g * grad,), "cross_entropy")
        if scale < 100:   # central differences of a loss near 0 or 1000 are all rounding
            with case(what):
                worst = max(worst, gradcheck(op, logits, name=f"softmax_cross_entropy, {what}"))
    return (f"{len(CROSS_ENTROPY_CASES)} cases equal tinyresnet's cross_entropy, scores of ±1000 "
            f"included; gradcheck worst relative error {worst:.1e}")


# ------------------------------------------------------------------ the training loop

LOOP_SHAPE_HINT = ("x is a NumPy array (B, 3, H, W) and y (B,): wrap x as Tensor(x) for the model; the logits "
                   "are (B, 10); F.cross_entropy(logits, y) is one number in a Tensor (.item() reads it); "
                   "logits.data.argmax(axis=1) is (B,), to compare with y.")
IMAGE = (3, 6, 6)                        # tiny images: the checks train in a blink
EPOCHS = ((9, 9, 9), (9, 9, 5))          # batch sizes: odd totals (an error rate is never 50%), a short last batch
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4
ORDER = ("logits = model(Tensor(x)); loss = F.cross_entropy(logits, y); opt.zero_grad(); "
         "loss.backward(); opt.step()")


class GlobalAvgPool(Module):
    def forward(self, x):
        return F.global_avg_pool(x)


def tiny_net(seed):
    """conv-BN-ReLU, global average pooling, linear: the smallest net with all that a loop must handle."""
    manual_seed(seed)
    return Sequential(Conv2d(3, 4, 3, 1, 1), BatchNorm2d(4), ReLU(), GlobalAvgPool(), Linear(4, 10))


def random_batches(sizes, rng):
    """[(x (n, 3, 6, 6) float32, y (n,) int64), ...], one per size: random images, random labels."""
    return [(rng.standard_normal((n, *IMAGE)).astype(np.float32), rng.integers(0, 10, n)) for n in sizes]


class Watch:
    """A forward hook on a tiny net's batch norm: which modes it ran in, and whether a graph was recorded."""

    def __init__(self, model):
        self.reset()
        model[1].register_forward_hook(self)

    def reset(self):
        """Forget what was seen so far (one epoch at a time)."""
        self.training, self.graph, self.calls = set(), set(), 0

    def __call__(self, module, inputs, out):
        self.calls += 1
        self.training.add(module.training)
        self.graph.add(out.requires_grad)


def library_epoch(model, opt, batches, zero_grad=True):
    """The reference: tinyresnet.train.train_step on every batch, in training mode.
    Returns (mean loss over images, error rate, [each batch's mean loss]). zero_grad=False is
    the slip of a loop that never clears .grad (to name it in a hint, never as the reference)."""
    model.train()
    losses, wrong = [], 0
    for x, y in batches:
        if zero_grad:
            loss, mistakes = train_step(model, opt, x, y)
        else:
            logits = model(Tensor(x))
            loss_tensor = F.cross_entropy(logits, y)
            loss_tensor.backward()
            opt.step()
            loss, mistakes = loss_tensor.data, (logits.data.argmax(axis=1) != y).sum()
        losses.append(float(loss))
        wrong += int(mistakes)
    sizes = [len(y) for _, y in batches]
    return float(np.dot(losses, sizes) / sum(sizes)), wrong / sum(sizes), losses


def two_numbers(result, fn_name):
    """result must be (mean loss, error rate), two plain numbers; returns them as floats."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Mismatch(f"{fn_name} must return a tuple (mean loss, error rate), got {describe(result)}")
    numbers = []
    for name, value in zip(("mean loss", "error rate"), result):
        if isinstance(value, Tensor):
            raise Mismatch(f"{fn_name} returned the {name} as a Tensor; return a number: .item() reads a "
                           "one-element Tensor, so loss.item() * len(y) adds one batch to a Python float.")
        if np.ndim(value) != 0:
            raise Mismatch(f"{fn_name} returned the {name} as {describe(value)}; it is one number for all "
                           "the images together.")
        numbers.append(float(value))
    return numbers


def _close(a, b):
    return np.isclose(a, b, rtol=1e-4, atol=1e-7)


def compare_numbers(fn_name, what, loss, error, expected, sizes):
    """The learner's (loss, error) against expected (loss, error, batch losses); a slip named if found."""
    expected_loss, expected_error, batch_losses = expected
    images = sum(sizes)
    if not _close(error, expected_error):
        wrong = round(expected_error * images)
        if _close(error, 1 - expected_error):
            hint = "this is the accuracy, the fraction of images the net got RIGHT; the error rate is 1 minus it."
        elif _close(error, 100 * expected_error):
            hint = "this is a percentage; return the error rate as a fraction (0.25, not 25)."
        elif _close(error, wrong):
            hint = f"this is the number of mistakes; divide it by the number of images ({images})."
        else:
            hint = ("count the images whose largest score is not their label, "
                    "(logits.data.argmax(axis=1) != y).sum(), over all batches, then divide by all their images.")
        raise Mismatch(f"{what}: your error rate is {error:.6g}, expected {expected_error:.6g} "
                       f"({wrong} of {images} images wrong)\nhint: {hint}")
    if not _close(loss, expected_loss):
        if _close(loss, np.mean(batch_losses)):
            hint = (f"you averaged the batches' mean losses, but the last batch has only {sizes[-1]} images: "
                    "weight each batch's mean loss by its number of images, loss.item() * len(y), and divide "
                    "the sum by the number of images.")
        elif _close(loss, np.sum(batch_losses)) or _close(loss, expected_loss * images):
            hint = "this is a sum; the mean loss divides it by the number of images."
        elif _close(loss, batch_losses[-1]):
            hint = "this is the last batch's loss; average over every image of every batch."
        else:
            hint = ("add up loss.item() * len(y) over the batches (each batch's mean loss times its images), "
                    "then divide by the number of images.")
        raise Mismatch(f"{what}: your mean loss is {loss:.6g}, expected {expected_loss:.6g} "
                       f"(each batch's: {', '.join(f'{b:.4f}' for b in batch_losses)})\nhint: {hint}")


def _largest_difference(mine, theirs):
    """(name, index, mine, theirs) where two state_dicts differ most, or None if they agree."""
    worst = None
    for key, a in mine.items():
        b = theirs[key]
        if not np.allclose(a, b, rtol=1e-4, atol=1e-6):
            i = np.unravel_index(np.argmax(np.abs(a - b)), a.shape)
            gap = abs(float(a[i]) - float(b[i]))
            if worst is None or gap > worst[0]:
                worst = (gap, key, i, float(a[i]), float(b[i]))
    return worst and worst[1:]


def _training_slip(watch, steps_taken, steps, mine, before, no_zero_grad, one_pass=False):
    """Why the learner's weights differ from the library's: the first slip the evidence shows."""
    if not watch.calls:
        used_up = (" These batches came as a one-pass iterator: if your code went through it before the loop "
                   "(to count the images, say), nothing was left for the loop. Go through batches once, and "
                   "count the images as you go." if one_pass else "")
        return f"the model was never called: for each (x, y) in batches, logits = model(Tensor(x)).{used_up}"
    if False in watch.training:
        return ("batch norm ran in eval mode (as evaluate leaves the model): call model.train() at the start of "
                "train_epoch, so that it normalizes with each batch's statistics and updates its running ones.")
    if watch.calls > steps:
        return (f"the model ran {watch.calls} forward passes for {steps} minibatches: each extra forward pass in "
                "training mode moves batch norm's running statistics again. Count the mistakes with the logits "
                "of the one training forward pass per minibatch (the weights before the step).")
    if False in watch.graph:
        return "the forward pass ran under no_grad(), so no graph was recorded for backward: train outside it."
    if steps_taken != steps:
        return (f"opt.step() ran {steps_taken} times for {steps} minibatches: once per minibatch, "
                f"in this order: {ORDER}.")
    weights = [k for k in before if not k.endswith(("running_mean", "running_var"))]
    if all(np.array_equal(mine[k], before[k]) for k in weights):
        return ("the weights did not move: opt.step() found no gradients. opt.zero_grad() clears them, so it "
                f"comes before loss.backward(), never between backward and step: {ORDER}.")
    if _largest_difference(mine, no_zero_grad) is None:
        return ("opt.zero_grad() is missing: backward() ADDS into each parameter's .grad, so without clearing it "
                "every step used the sum of all gradients so far (gradients accumulate). Call opt.zero_grad() "
                "before loss.backward().")
    return f"one step is five lines, in this order: {ORDER}."


@check("train_epoch", shape_hint=LOOP_SHAPE_HINT)
def check_train_epoch(train_epoch):
    rng = np.random.default_rng(4)
    total = sum(len(sizes) for sizes in EPOCHS)
    models = {who: tiny_net(seed=1) for who in ("yours", "library", "no zero_grad")}
    opts = {who: SGD(m.parameters(), paper_schedule(LR, total), MOMENTUM, WEIGHT_DECAY) for who, m in models.items()}
    watch = Watch(models["yours"])
    steps = 0
    for epoch, sizes in enumerate(EPOCHS, 1):
        batches = random_batches(sizes, rng)
        lrs = ", ".join(f"{paper_schedule(LR, total)(steps + i):g}" for i in range(len(sizes)))
        what = (f"epoch {epoch} of a tiny conv-BN-ReLU net, batches of {', '.join(map(str, sizes))} images"
                f"{' (given as a one-pass iterator)' if epoch == 2 else ''}, learning rates {lrs}")
        expected = library_epoch(models["library"], opts["library"], batches)
        library_epoch(models["no zero_grad"], opts["no zero_grad"], batches, zero_grad=False)
        before = models["yours"].state_dict()
        models["yours"].eval()      # as evaluate leaves it
        steps_before = opts["yours"].steps
        watch.reset()
        with case(what):
            result = train_epoch(models["yours"], opts["yours"], iter(batches) if epoch == 2 else batches)
            loss, error = two_numbers(result, "train_epoch")
        steps += len(sizes)
        mine, theirs = models["yours"].state_dict(), models["library"].state_dict()
        differ = _largest_difference(mine, theirs)
        if differ:
            name, i, a, b = differ
            hint = _training_slip(watch, opts["yours"].steps - steps_before, len(sizes), mine, before,
                                  models["no zero_grad"].state_dict(), one_pass=epoch == 2)
            raise Mismatch(f"after {what}: {name}[{', '.join(map(str, i))}] is {a:.6g}, the same net trained "
                           f"by tinyresnet.train.train_step has {b:.6g}\nhint: {hint}")
        compare_numbers("train_epoch", what, loss, error, expected, sizes)
    return (f"{len(EPOCHS)} epochs, {steps} steps through a schedule with drops: the same weights, running "
            "statistics, mean loss and error rate as tinyresnet.train.train_step")


@check("evaluate", shape_hint=LOOP_SHAPE_HINT)
def check_evaluate(evaluate):
    rng = np.random.default_rng(5)
    model = tiny_net(seed=2)
    opt = SGD(model.parameters(), LR, MOMENTUM, WEIGHT_DECAY)
    for x, y in random_batches((9, 9, 9), rng):     # trained a little, on images unlike the test images:
        train_step(model, opt, 2 + 3 * x, y)        # running statistics far from any test batch's own
    model.zero_grad()
    x_test, y_test = rng.integers(0, 256, (19, *IMAGE), dtype=np.uint8), rng.integers(0, 10, 19)
    batches = Loader(x_test, y_test, 8, per_pixel_mean(x_test))
    sizes = [len(y) for _, y in batches]
    reference = tiny_net(seed=2)
    reference.load_state_dict(model.state_dict())
    expected_loss, expected_error = library_evaluate(reference, batches, "cpu")
    reference.eval()
    with no_grad():
        batch_losses = [cross_entropy(reference(Tensor(x)), y).item() for x, y in batches]
    saved, watch = model.state_dict(), Watch(model)
    model.train()
    what = (f"a tiny trained conv-BN-ReLU net, handed over in training mode; {len(y_test)} test images in "
            f"batches of {', '.join(map(str, sizes))}")
    with case(what):
        result = evaluate(model, batches)
        loss, error = two_numbers(result, "evaluate")
    changed = [k for k, v in model.state_dict().items() if not np.array_equal(v, saved[k])]
    if not watch.calls:
        raise Mismatch(f"{what}: the model was never called.\nhint: for each (x, y) in batches, "
                       "logits = model(Tensor(x)).")
    if True in watch.training:
        moved = " and moved its running statistics towards the test images" if any(
            k.endswith(("running_mean", "running_var")) for k in changed) else ""
        raise Mismatch(f"{what}: batch norm ran in training mode{moved}. It normalized each batch with the "
                       "batch's own mean and variance, so an image's scores depend on which images share its "
                       "batch, and every evaluation changes the model.\nhint: call model.eval() at the start "
                       "of evaluate: batch norm then uses its running statistics and leaves them alone.")
    if changed or any(p.grad is not None for p in model.parameters()):
        raise Mismatch(f"{what}: evaluate changed the model ({', '.join(changed) or 'gradients in .grad'}).\n"
                       "hint: evaluate only measures: no loss.backward(), no optimizer step.")
    if True in watch.graph:
        raise Mismatch(f"{what}: evaluate recorded a graph: every operation kept its inputs for a backward pass "
                       "that never comes, which costs memory and time.\nhint: run the loop inside "
                       "`with no_grad():` (from tinyresnet import no_grad).")
    compare_numbers("evaluate", what, loss, error, (expected_loss, expected_error, batch_losses), sizes)
    if model.training:
        raise Mismatch(f"{what}: the numbers are right, but evaluate left the model in training mode.\nhint: "
                       "leave it in eval mode, as the text asks (train_epoch switches it back with model.train()).")
    return (f"{len(y_test)} images in batches of {', '.join(map(str, sizes))}: eval mode, no graph, the model "
            f"untouched; loss {loss:.4f} and error rate {error:.4f} as tinyresnet.train.evaluate")
