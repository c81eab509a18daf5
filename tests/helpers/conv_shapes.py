"""The convolution shapes the tests share: the core's checks and the speed wing's equality tests.

They are lesson 02's check shapes (lessons/checks/convolution_im2col.py), so that what the learner's
convolution is checked on and what the library's is tested on are one list.
"""
from checks.convolution_im2col import CONV_CONFIGS, CONV_GRAD_CONFIGS

CONFIGS = CONV_CONFIGS             # (N, C, H, W), (K, C, R, S), stride, padding: forward checks
GRAD_CONFIGS = CONV_GRAD_CONFIGS   # the same layout: gradient checks (small, since gradcheck is slow)


def config_id(cfg):
    xs, ws, stride, padding = cfg
    return f"x{xs}-w{ws}-s{stride}-p{padding}".replace(" ", "")
