"""Stochastic gradient descent with momentum and weight decay, and LR schedules.

A schedule maps the step count to a learning rate; SGD takes one as its `lr`, counts
its steps and asks the schedule before each one. `paper_schedule` is the paper's rule.
"""
import math
import numbers

import numpy as np

from .autograd import no_grad
from .device import device_of, to_device

WARMUP_FRACTION, WARMUP_UNTIL = 0.1, 0.80   # the paper's ResNet-110 warm-up: 0.01 = 0.1 x its LR of 0.1


class SGD:
    """The paper's optimizer, in PyTorch's formulation:

        g = grad + weight_decay * w          (L2 regularization added to the gradient)
        v = momentum * v + g
        w = w - lr * v

    lr is a number, or a schedule (StepDecay, Warmup: step count -> learning rate) that
    step() asks before every step. `steps` counts the steps taken; `lr` is the rate of
    the last one (with a plain number, set it to change the rate of the next steps).
    """

    def __init__(self, params, lr=0.1, momentum=0.9, weight_decay=1e-4):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD got no parameters to optimize")
        self.schedule = lr if callable(lr) else None
        self.lr = lr(0) if callable(lr) else lr
        self.momentum, self.weight_decay = momentum, weight_decay
        self.velocity = [None] * len(self.params)
        self.steps = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        if self.schedule is not None:
            self.lr = self.schedule(self.steps)
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
        self.steps += 1

    def state_dict(self):
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "steps": self.steps,
                "schedule": None if self.schedule is None else self.schedule.state_dict(),
                "velocity": [None if v is None else to_device(v, "cpu").copy() for v in self.velocity]}

    def load_state_dict(self, state):
        """Take back a state_dict. A state that is not SGD's for these parameters (a damaged or
        crafted file) raises ValueError, naming the entry, before anything is changed: a step
        count that is not a whole number, a rate that is not a finite number, momentum outside
        [0, 1), a momentum buffer of another shape."""
        velocity = state["velocity"]
        if not isinstance(velocity, (list, tuple)) or len(velocity) != len(self.params):
            count = len(velocity) if isinstance(velocity, (list, tuple)) else type(velocity).__name__
            raise ValueError(f"optimizer state has {count} buffers, this optimizer has {len(self.params)} parameters")
        steps = state["steps"]
        if not (isinstance(steps, numbers.Integral) and not isinstance(steps, bool) and steps >= 0):
            raise ValueError(f"optimizer state: steps must be a whole number >= 0, got {_short(steps)}")
        for key in ("lr", "momentum", "weight_decay"):
            value = state[key]
            if not (isinstance(value, numbers.Real) and not isinstance(value, bool)
                    and math.isfinite(value) and value >= 0):
                raise ValueError(f"optimizer state: {key} must be a finite number >= 0, got {_short(value)}")
        if not state["momentum"] < 1:
            raise ValueError(f"optimizer state: momentum must be below 1, got {state['momentum']}")
        for i, (v, p) in enumerate(zip(velocity, self.params)):
            if v is None:
                continue
            dtype = getattr(v, "dtype", None)
            if tuple(getattr(v, "shape", ())) != p.shape or dtype is None or dtype.kind not in "biuf":
                raise ValueError(f"optimizer state: momentum buffer {i} is {_short(v)}, its parameter "
                                 f"has shape {p.shape}")
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        self.lr, self.momentum, self.weight_decay = state["lr"], state["momentum"], state["weight_decay"]
        self.steps = int(steps)
        self.velocity = [None if v is None else to_device(np.array(v, dtype=p.dtype), device_of(p.data))
                         for v, p in zip(velocity, self.params)]


def _short(value):
    """A value for a message: an array by its shape and dtype, anything else cut to 40 characters."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"an array of shape {tuple(value.shape)} ({value.dtype})"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def paper_schedule(lr, total, warmup=False):
    """The paper's rule for a run of `total` iterations: lr, divided by 10 at 50% and at 75%
    of the run (its 32k and 48k of 64k), never before the first step (a run of 1 iteration
    trains at lr); with warmup, the ResNet-110 warm-up in front (Warmup) at lr / 10: the
    paper's 0.01 for its 0.1, scaled with lr when a smaller batch scales lr down."""
    schedule = StepDecay(lr, [max(1, total // 2), max(1, total * 3 // 4)])
    return Warmup(schedule, WARMUP_FRACTION * lr, WARMUP_UNTIL) if warmup else schedule


class StepDecay:
    """lr = base_lr * gamma ** (number of milestones passed), as a function of the iteration.

    The paper: 0.1, divided by 10 at 32k and 48k iterations: StepDecay(0.1, [32000, 48000]).
    """

    def __init__(self, base_lr, milestones, gamma=0.1):
        self.base_lr, self.milestones, self.gamma = base_lr, sorted(milestones), gamma

    def __call__(self, iteration):
        return self.base_lr * self.gamma ** sum(iteration >= m for m in self.milestones)

    def observe(self, train_error):
        """A step schedule does not depend on the error (see Warmup); False: nothing changed."""
        return False

    def __str__(self):
        """How a run states its schedule: 'lr 0.1, /10 at iterations 32000 and 48000'."""
        if not self.milestones:
            return f"lr {self.base_lr:g}"
        drop = "/10" if self.gamma == 0.1 else f"x{self.gamma:g}"
        at = " and ".join(map(str, self.milestones))
        return f"lr {self.base_lr:g}, {drop} at iteration{'s' * (len(self.milestones) > 1)} {at}"

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

    def __init__(self, schedule, warmup_lr=0.01, until_error=WARMUP_UNTIL):
        self.schedule, self.warmup_lr, self.until_error = schedule, warmup_lr, until_error
        self.done = False

    def observe(self, train_error):
        """Feed the training error; True when this observation ends the warm-up."""
        ends = not self.done and train_error < self.until_error
        self.done = self.done or ends
        return ends

    def __call__(self, iteration):
        return self.schedule(iteration) if self.done else self.warmup_lr

    def __str__(self):
        return f"{self.schedule}; warm-up at {self.warmup_lr:g} until training error < {self.until_error:.0%}"

    def state_dict(self):
        return {"done": self.done}

    def load_state_dict(self, state):
        if not isinstance(state, dict) or not isinstance(state.get("done"), bool):
            raise ValueError(f"warm-up state must be {{'done': True or False}}, got {_short(state)}")
        self.done = state["done"]
