"""Stochastic gradient descent with momentum and weight decay, and LR schedules."""
import numpy as np

from .autograd import no_grad
from .device import device_of, to_device


class SGD:
    """The paper's optimizer, in PyTorch's formulation:

        g = grad + weight_decay * w          (L2 regularization added to the gradient)
        v = momentum * v + g
        w = w - lr * v
    """

    def __init__(self, params, lr=0.1, momentum=0.9, weight_decay=1e-4):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD got no parameters to optimize")
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocity = [None] * len(self.params)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        with no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                g = p.grad + self.weight_decay * p.data
                if self.velocity[i] is None:
                    self.velocity[i] = g
                else:
                    self.velocity[i] *= self.momentum
                    self.velocity[i] += g
                p.data -= self.lr * self.velocity[i]

    def state_dict(self):
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "velocity": [None if v is None else to_device(v, "cpu").copy() for v in self.velocity]}

    def load_state_dict(self, state):
        if len(state["velocity"]) != len(self.params):
            raise ValueError(f"optimizer state has {len(state['velocity'])} buffers, "
                             f"this optimizer has {len(self.params)} parameters")
        self.lr, self.momentum, self.weight_decay = state["lr"], state["momentum"], state["weight_decay"]
        self.velocity = [None if v is None else to_device(np.array(v, dtype=p.dtype), device_of(p.data))
                         for v, p in zip(state["velocity"], self.params)]


class StepDecay:
    """lr = base_lr * gamma ** (number of milestones passed), as a function of the iteration.

    The paper: 0.1, divided by 10 at 32k and 48k iterations: StepDecay(0.1, [32000, 48000]).
    """

    def __init__(self, base_lr, milestones, gamma=0.1):
        self.base_lr, self.milestones, self.gamma = base_lr, sorted(milestones), gamma

    def __call__(self, iteration):
        return self.base_lr * self.gamma ** sum(iteration >= m for m in self.milestones)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class Warmup:
    """The paper's ResNet-110 warm-up: a small LR until training error drops below a threshold.

    "We use 0.01 to warm up the training until the training error is below 80%
    (about 400 iterations), and then go back to 0.1 and continue training."
    Call `observe(train_error)` as training goes; then the wrapped schedule takes over.
    """

    def __init__(self, schedule, warmup_lr=0.01, until_error=0.80):
        self.schedule, self.warmup_lr, self.until_error = schedule, warmup_lr, until_error
        self.done = False

    def observe(self, train_error):
        self.done = self.done or train_error < self.until_error

    def __call__(self, iteration):
        return self.schedule(iteration) if self.done else self.warmup_lr

    def state_dict(self):
        return {"done": self.done}

    def load_state_dict(self, state):
        self.done = state["done"]
