"""Layers as modules: objects that own parameters and call functional ops.

A Module finds its parameters by looking at its attributes: a Parameter is
one, a Module or a list of Modules is searched in turn. Buffers (batch norm's
running statistics) are plain arrays that are saved but never trained.
"""
import numpy as np

from . import functional as F
from .autograd import HookHandle, Tensor
from .device import device_of, to_device, xp_of

_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Make weight initialization repeatable (it always happens on the host, in float32)."""
    global _rng
    _rng = np.random.default_rng(seed)


class Parameter(Tensor):
    """A tensor that a Module trains: requires_grad is always on; a float32 copy of data, on data's device."""

    def __init__(self, data):
        super().__init__(xp_of(data).array(data, dtype=np.float32), requires_grad=True)


class Module:
    training = True
    _buffers = ()

    def __call__(self, *args):
        out = self.forward(*args)
        for hook in getattr(self, "_forward_hooks", ()):
            replaced = hook(self, args, out)
            out = out if replaced is None else replaced
        return out

    def register_forward_hook(self, fn):
        """Call fn(module, inputs, output) after every forward pass of this module.

        A way to look inside a net without changing its code: record activations,
        or call output.register_hook(...) to see the gradient that reaches this
        module's output during backward. fn may return a replacement output.
        Returns a handle; handle.remove() takes the hook off again.
        """
        if "_forward_hooks" not in vars(self):
            self._forward_hooks = []
        self._forward_hooks.append(fn)
        return HookHandle(self._forward_hooks, fn)

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def children(self):
        """(name, module) for direct sub-modules, including those in lists."""
        for key, value in vars(self).items():
            if isinstance(value, Module):
                yield key, value
            elif isinstance(value, (list, tuple)):
                yield from ((f"{key}.{i}", m) for i, m in enumerate(value) if isinstance(m, Module))

    def modules(self):
        yield self
        for _, child in self.children():
            yield from child.modules()

    def named_modules(self, prefix=""):
        """(name, module) for this module ("") and every sub-module, e.g. "blocks.3.conv1"."""
        yield prefix.rstrip("."), self
        for key, child in self.children():
            yield from child.named_modules(f"{prefix}{key}.")

    def named_parameters(self, prefix=""):
        for key, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + key, value
        for key, child in self.children():
            yield from child.named_parameters(f"{prefix}{key}.")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        for key in self._buffers:
            yield prefix + key, getattr(self, key)
        for key, child in self.children():
            yield from child.named_buffers(f"{prefix}{key}.")

    def train(self, mode=True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to(self, device):
        """Move every parameter and buffer to `device`, in place; returns self."""
        for p in self.parameters():
            p.data = to_device(p.data, device)
            p.grad = None
        for m in self.modules():
            for key in m._buffers:
                setattr(m, key, to_device(getattr(m, key), device))
        return self

    def state_dict(self):
        """name -> NumPy copy, for parameters and buffers (host arrays, device-independent)."""
        items = list(self.named_parameters()) + list(self.named_buffers())
        return {k: to_device(v.data if isinstance(v, Tensor) else v, "cpu").copy() for k, v in items}

    def load_state_dict(self, state):
        """Copy values from `state` into this module's arrays, on their current devices."""
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
        if missing or unexpected:
            raise KeyError(f"state_dict does not match {type(self).__name__}: "
                           f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
        for key, target in own.items():
            array = target.data if isinstance(target, Tensor) else target
            if tuple(state[key].shape) != array.shape:
                raise ValueError(f"state_dict[{key!r}] has shape {tuple(state[key].shape)}, "
                                 f"the module has {array.shape}")
            array[...] = to_device(np.asarray(state[key], dtype=array.dtype), device_of(array))

    def num_parameters(self):
        return sum(p.data.size for p in self.parameters())


class Conv2d(Module):
    """3×3 (or any) convolution without bias, He-normal initialized: std = sqrt(2 / fan_in).

    He et al. 2015 ("Delving deep into rectifiers") derive that std keeps the
    variance of activations constant through ReLU layers; the ResNet paper uses it.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=0):
        fan_in = in_channels * kernel_size * kernel_size
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = Parameter(_rng.standard_normal(shape) * np.sqrt(2.0 / fan_in))
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight, self.stride, self.padding)


class BatchNorm2d(Module):
    """Per-channel batch norm with learned scale gamma (1s) and shift beta (0s).

    ghost_batch=B normalizes each B-image slice of a training minibatch on its own (ghost
    batch norm, see batchnorm.py); None, the default, normalizes the whole minibatch."""
    _buffers = ("running_mean", "running_var")

    def __init__(self, channels, momentum=0.1, eps=1e-5, ghost_batch=None):
        self.gamma = Parameter(np.ones(channels))
        self.beta = Parameter(np.zeros(channels))
        self.running_mean = np.zeros(channels, dtype=np.float32)
        self.running_var = np.ones(channels, dtype=np.float32)
        self.momentum, self.eps, self.ghost_batch = momentum, eps, ghost_batch

    def forward(self, x):
        return F.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                            self.training, self.momentum, self.eps, self.ghost_batch)


def set_ghost_batch(model, size):
    """Make every BatchNorm2d of model normalize slices of `size` images (None: whole minibatches);
    returns model."""
    for m in model.modules():
        if isinstance(m, BatchNorm2d):
            m.ghost_batch = size
    return model


class Linear(Module):
    """y = x @ weight.T + bias, initialized uniform in ±1/sqrt(in_features) as PyTorch does."""

    def __init__(self, in_features, out_features):
        bound = 1 / np.sqrt(in_features)
        self.weight = Parameter(_rng.uniform(-bound, bound, (out_features, in_features)))
        self.bias = Parameter(_rng.uniform(-bound, bound, out_features))

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class Identity(Module):
    """Passes its input on unchanged: the place of a layer that a variant leaves out
    (the CIFAR nets built with batch_norm=False have one where each batch norm was)."""

    def forward(self, x):
        return x


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Sequential(Module):
    """Modules applied one after the other."""

    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)
