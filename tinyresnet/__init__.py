"""tinyresnet: deep residual networks built by hand in NumPy (CPU) or CuPy (GPU)."""
__version__ = "0.1.0"

from . import functional, nn, optim
from .autograd import Tensor, is_grad_enabled, no_grad
from .device import DeviceError, gpu_available
from .gradcheck import GradcheckError, gradcheck
from .nn import manual_seed

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "gradcheck", "GradcheckError",
           "functional", "nn", "optim", "manual_seed", "gpu_available", "DeviceError"]
