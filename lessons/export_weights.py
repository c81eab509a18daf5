"""Turn finished runs into the trained weights that ship with the lessons (lessons/weights/<name>.npz).

    python lessons/export_weights.py lessons/results/cpu-fig6-b16-30ep-rerun/{plain20,plain56,resnet20,resnet56} \
        --data-dir data

Each run folder's checkpoint.npz becomes lessons/weights/<folder name>.npz: the model in float16
and where it came from (experiments.export_weights). What float16 changed is measured on
--images test images and printed; the CIFAR-10 test set is needed for that (--data-dir or
$TINYRESNET_DATA). Then commit lessons/weights/ and re-execute lessons 07 and 08.
"""
import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from experiments import WEIGHTS, WeightsError, describe_weights, export_weights  # noqa: E402
from tinyresnet.data import DataError  # noqa: E402
from tinyresnet.run.checkpoint import CheckpointError  # noqa: E402
from tinyresnet.run.folder import RunFolderError  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run folders (with checkpoint.npz)")
    parser.add_argument("--out", default=str(WEIGHTS), metavar="DIR", help=f"where to write (default {WEIGHTS})")
    parser.add_argument("--images", type=int, default=500, help="test images to measure float16 on (default 500)")
    parser.add_argument("--data-dir", default=None, metavar="DIR", help="folder holding cifar-10-batches-py/")
    args = parser.parse_args(argv)
    for run_dir in args.runs:
        try:
            path, info = export_weights(run_dir, folder=args.out, images=args.images, data_dir=args.data_dir)
        except (WeightsError, CheckpointError, RunFolderError, DataError, KeyError) as e:
            sys.exit(f"export_weights: {e}")
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)\n{describe_weights(info['name'], args.out)}")


if __name__ == "__main__":
    main()
