"""Lesson 04: the training loop. One epoch of SGD steps, and a measurement on held-out images.

Lesson 05 imports both to train the learner's own ResNet: keep their names and arguments.
"""
from tinyresnet import Tensor, no_grad
from tinyresnet import functional as F


def train_epoch(model, opt, batches):
    """One SGD step per minibatch of `batches` (x (B, 3, H, W) float32, y (B,) int host arrays).

    Returns (mean loss, error rate) over the epoch: the loss of every image as the net was
    trained on it, averaged over images, and the fraction of them it got wrong (0.25, not 25).
    The learning-rate schedule belongs to opt: opt.step() asks it, one step per minibatch.
    """
    # 1. training mode: batch norm normalizes with each batch's own statistics and updates its
    #    running ones (evaluate switched them off)
    model.train()
    loss_sum, wrong, images = 0.0, 0, 0
    for x, y in batches:
        # 2. forward: the scores (B, 10), then one number, the batch's mean cross-entropy
        logits = model(Tensor(x))
        loss = F.cross_entropy(logits, y)
        # 3. backward: gradients add into .grad, so clear the last step's first
        opt.zero_grad()
        loss.backward()
        # 4. one step of SGD with momentum and weight decay, at the rate the schedule gives now
        opt.step()
        # 5. bookkeeping: the batch mean times its size is the batch's sum of image losses
        loss_sum += loss.item() * len(y)
        wrong += int((logits.data.argmax(axis=1) != y).sum())
        images += len(y)
    return loss_sum / images, wrong / images


def evaluate(model, batches):
    """(mean loss, error rate) of the model on every image of `batches`, without training it.

    Eval mode (batch norm uses its running statistics and leaves them alone) and no graph
    (nothing will call backward, so there is no need to record the operations).
    """
    # 1. eval mode: every image is normalized with the same, fixed statistics, whatever its batch
    model.eval()
    loss_sum, wrong, images = 0.0, 0, 0
    # 2. no_grad: no graph is recorded, which saves the memory and time of keeping every activation
    with no_grad():
        for x, y in batches:
            logits = model(Tensor(x))
            # 3. the last batch may be smaller: weight each batch's mean loss by its images
            loss_sum += F.cross_entropy(logits, y).item() * len(y)
            wrong += int((logits.data.argmax(axis=1) != y).sum())
            images += len(y)
    return loss_sum / images, wrong / images
