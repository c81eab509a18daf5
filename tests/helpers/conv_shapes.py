"""The convolution shapes the tests share: the core's checks and the speed wing's equality tests."""

# (N, C, H, W), (K, C, R, S), stride, padding
CONFIGS = [
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1),
    ((1, 1, 7, 5), (2, 1, 3, 3), 2, 0),      # non-square input, stride 2
    ((2, 3, 8, 8), (4, 3, 3, 3), 2, 1),      # the ResNet downsampling conv
    ((2, 2, 6, 6), (3, 2, 1, 1), 1, 0),      # 1x1 kernel
    ((1, 3, 5, 7), (2, 3, 5, 5), 1, 2),      # big kernel, padding 2
    ((2, 3, 6, 5), (4, 3, 3, 2), 1, 1),      # non-square kernel
    ((2, 16, 4, 4), (8, 16, 3, 3), 1, 1),    # many channels
    ((2, 3, 6, 6), (4, 3, 3, 3), 1, 0),      # no padding: the output is smaller than the input
]


def config_id(cfg):
    xs, ws, stride, padding = cfg
    return f"x{xs}-w{ws}-s{stride}-p{padding}".replace(" ", "")
