"""Lesson 05: the option-A shortcut of a residual block (identity, subsampled, zero-padded)."""
from tinyresnet import functional as F


def option_a_shortcut(x, out_channels, stride):
    """x: Tensor (N, C, H, W) -> Tensor (N, out_channels, H/stride, W/stride), no parameters."""
    # 1. where the block halves the feature map, keep every stride-th row and column
    if stride != 1:
        x = F.subsample(x, stride)
    # 2. where the block widens, append zero channels: half of them before, the rest after
    extra = out_channels - x.shape[1]
    if extra:
        x = F.pad_channels(x, extra // 2, extra - extra // 2)
    # 3. otherwise x passes unchanged: the identity shortcut
    return x
