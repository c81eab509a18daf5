"""Lesson 04: one step of SGD with momentum and weight decay, the paper's optimizer."""


def sgd_momentum_step(w, grad, velocity, lr, momentum, weight_decay):
    """Return (new_w, new_velocity) after one step, in PyTorch's formulation."""
    # 1. weight decay: the gradient of (weight_decay / 2) * ||w||^2 is weight_decay * w;
    #    add it to the loss gradient (this is L2 regularization)
    g = grad + weight_decay * w
    # 2. momentum: the velocity is a running sum of gradients, older ones weighted by momentum^k
    new_velocity = momentum * velocity + g
    # 3. step against the velocity; new arrays, so the caller's w and velocity stay untouched
    new_w = w - lr * new_velocity
    return new_w, new_velocity
