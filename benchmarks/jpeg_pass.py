"""Write a copy of CIFAR-10 with every image passed once more through JPEG, to measure what JPEG costs.

    python benchmarks/jpeg_pass.py data data/jpeg-pass            # quality 75, 4:2:0, blocks shifted by 3
    python -m tinyresnet.train ... --data-dir data/jpeg-pass     # the same run, on the degraded copy

The offline copy of CIFAR-10 in ../shared is itself a JPEG re-encode (Pillow's defaults: quality
75, colour stored at half resolution, 4:2:0), and the original pixels are not available here, so
what that first pass costs cannot be measured directly. What can be measured is the cost of one
more pass of the same kind: train the same net with the same seed (the same subset, initial
weights and minibatches) on both copies, and compare.

A second pass on the same 8x8 grid and the same 2x2 colour pairs removes little, because the first
pass already rounded exactly those coefficients. So the image is shifted by --offset pixels before
it is encoded (padded by reflection to a multiple of 8 on each axis, then cropped back): an odd
offset moves both the 8x8 blocks and the 2x2 colour pairs off the first pass's grid, and the
second pass rounds away detail the first one kept.

Writes OUT/cifar-10-batches-py/ in the official layout (the labels and batches.meta unchanged), and
prints how much the pass changed the pixels: mean absolute change (0..255) and PSNR in dB.
"""
import argparse
import io
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinyresnet.data import FOLDER, META_FILE, TEST_FILE, TRAIN_FILES, find_data_dir, load_cifar10  # noqa: E402

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}   # Pillow's codes for how colour is stored
BLOCK = 8


def jpeg_pass(image, quality=75, subsampling="4:2:0", offset=3):
    """One JPEG encode and decode of image (3, H, W) uint8 -> (3, H, W) uint8.

    The image is padded by reflection with offset pixels before it (top, left) and enough after it
    to fill whole 8x8 blocks, so that the grid starts offset pixels earlier than the image does.
    """
    from PIL import Image
    _, h, w = image.shape
    after_h, after_w = (-(h + offset)) % BLOCK, (-(w + offset)) % BLOCK
    hwc = np.pad(image.transpose(1, 2, 0), ((offset, after_h), (offset, after_w), (0, 0)), mode="reflect")
    buffer = io.BytesIO()
    Image.fromarray(hwc).save(buffer, format="JPEG", quality=quality, subsampling=SUBSAMPLING[subsampling])
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return decoded[offset:offset + h, offset:offset + w].transpose(2, 0, 1).copy()


def psnr(a, b):
    """Peak signal-to-noise ratio of b against a (uint8 arrays), in dB."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def write_batch(path, label, x, y):
    """One batch in the official layout: x (N, 3, 32, 32) uint8, y (N,) int."""
    batch = {b"batch_label": label.encode(), b"labels": [int(v) for v in y],
             b"data": x.reshape(len(x), -1), b"filenames": [f"jpeg_pass_{i:05d}".encode() for i in range(len(x))]}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=4)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", help="folder holding cifar-10-batches-py/ (the copy to degrade)")
    p.add_argument("out", type=Path, help="folder to write cifar-10-batches-py/ into")
    p.add_argument("--quality", type=int, default=75, help="JPEG quality, 1..95 (default 75, Pillow's)")
    p.add_argument("--subsampling", choices=SUBSAMPLING, default="4:2:0", help="how colour is stored (default 4:2:0, Pillow's)")
    p.add_argument("--offset", type=int, default=3, help="pixels by which the grid is shifted, 0..7 (default 3)")
    args = p.parse_args(argv)
    if not 1 <= args.quality <= 95:
        p.error(f"--quality must be from 1 to 95, got {args.quality}")
    if not 0 <= args.offset < BLOCK:
        p.error(f"--offset must be from 0 to {BLOCK - 1}, got {args.offset}")
    src = find_data_dir(args.src) / FOLDER
    x_train, y_train, x_test, y_test = load_cifar10(args.src, download=False)
    out = args.out / FOLDER
    if out.resolve() == src.resolve():
        p.error("OUT must differ from SRC: the pass would overwrite the copy it reads")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / META_FILE, out / META_FILE)
    options = dict(quality=args.quality, subsampling=args.subsampling, offset=args.offset)
    x_all = np.concatenate([x_train, x_test])
    passed = np.stack([jpeg_pass(img, **options) for img in tqdm(x_all, desc="JPEG pass", unit="img")])
    n = len(x_train) // len(TRAIN_FILES)
    for i, name in enumerate(TRAIN_FILES):
        write_batch(out / name, f"training batch {i + 1} of {len(TRAIN_FILES)}", passed[i * n:(i + 1) * n], y_train[i * n:(i + 1) * n])
    write_batch(out / TEST_FILE, "testing batch 1 of 1", passed[len(x_train):], y_test)
    change = np.abs(passed.astype(np.int16) - x_all.astype(np.int16))
    print(f"wrote {out}: quality {args.quality}, {args.subsampling}, offset {args.offset}; "
          f"mean absolute change {change.mean():.2f} of 255, PSNR {psnr(x_all, passed):.1f} dB")


if __name__ == "__main__":
    main()
