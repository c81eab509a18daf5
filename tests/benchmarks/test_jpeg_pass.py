"""benchmarks/jpeg_pass.py: one more JPEG pass over CIFAR-10, the evidence for what JPEG costs (issue 28).
Skipped without Pillow, which tinyresnet itself never needs."""
import sys
from pathlib import Path

import numpy as np
import pytest

from cifar_fixture import write_fake_cifar
from tinyresnet.data import load_cifar10

pytest.importorskip("PIL")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import jpeg_pass  # noqa: E402


def textured_image(seed=0):
    """(3, 32, 32) uint8 with edges and fine detail, as a photograph has: smooth colour plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    base = np.stack([96 + 64 * np.sin(xx / 5), 128 + 48 * np.cos(yy / 4), 80 + 2 * xx + 2 * yy])
    return np.clip(base + rng.normal(0, 24, (3, 32, 32)), 0, 255).astype(np.uint8)


def test_a_pass_keeps_the_shape_and_loses_more_at_lower_quality():
    image = textured_image()
    high = jpeg_pass.jpeg_pass(image, quality=95, subsampling="4:4:4", offset=3)
    low = jpeg_pass.jpeg_pass(image, quality=20, subsampling="4:2:0", offset=3)
    assert high.shape == image.shape and high.dtype == np.uint8, (
        f"a pass must return (3, 32, 32) uint8 like its input, got {high.shape} {high.dtype}")
    assert jpeg_pass.psnr(image, high) > jpeg_pass.psnr(image, low) + 5, (
        f"quality 95 at full colour should be far closer to the input than quality 20 at 4:2:0: "
        f"PSNR {jpeg_pass.psnr(image, high):.1f} vs {jpeg_pass.psnr(image, low):.1f} dB; is the crop "
        f"taken from the wrong place (offset) or the channels transposed?")


def test_the_shift_is_what_makes_a_second_pass_remove_new_detail():
    once = jpeg_pass.jpeg_pass(textured_image(), offset=0)
    again_aligned = jpeg_pass.psnr(once, jpeg_pass.jpeg_pass(once, offset=0))
    again_shifted = jpeg_pass.psnr(once, jpeg_pass.jpeg_pass(once, offset=3))
    assert again_shifted < again_aligned - 3, (
        f"a second pass on the first pass's grid should change little and a shifted one much more "
        f"(the module's claim); PSNR aligned {again_aligned:.1f} dB, shifted by 3: {again_shifted:.1f} dB")


def test_the_copy_reads_back_with_the_same_labels_and_changed_pixels(tmp_path):
    src = write_fake_cifar(tmp_path / "src", per_file=8, python2_style=False)
    jpeg_pass.main([str(src), str(tmp_path / "out")])
    x_tr, y_tr, x_te, y_te = load_cifar10(src, download=False)
    p_tr, q_tr, p_te, q_te = load_cifar10(tmp_path / "out", download=False)
    assert (q_tr == y_tr).all() and (q_te == y_te).all(), "the pass must keep every label in its place"
    assert p_tr.shape == x_tr.shape and p_te.shape == x_te.shape, "the pass must keep every image in its place"
    assert (p_tr != x_tr).any(), "the written copy is the input unchanged: was the pass applied?"


@pytest.mark.parametrize("args, message", [(["--quality", "0"], "--quality"), (["--offset", "8"], "--offset")])
def test_bad_options_are_refused_with_a_message(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit):
        jpeg_pass.main([str(tmp_path), str(tmp_path / "out"), *args])
    assert message in capsys.readouterr().err
