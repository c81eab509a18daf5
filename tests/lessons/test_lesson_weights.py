"""The trained weights that ship with the lessons (lessons/weights/), and how they are made.

experiments.trained_model(name) must give the four nets of lessons 07 and 08 from the files
in the repository, in float32 and evaluation mode; export_weights must turn a finished run's
checkpoint into such a file (float16, pickle-free), measure what float16 changed, and refuse
runs that are not finished.
"""
import numpy as np
import pytest

import experiments
from cifar_fixture import write_fake_cifar
from experiments import NETS, WEIGHTS, WeightsError, describe_weights, export_weights, trained_model, weights_info
from tinyresnet.models import CifarResNet
from tinyresnet.run.folder import read_log
from tinyresnet.train import run

pytestmark = pytest.mark.lessons

MAX_MB = 8   # all four files together: small enough to ship in the repository


@pytest.mark.parametrize("name", list(NETS))
def test_the_shipped_weights_load_as_the_named_net(name):
    depth, residual = NETS[name]
    model = trained_model(name)
    assert isinstance(model, CifarResNet) and (model.depth, model.residual) == (depth, residual)
    assert not model.training, "trained_model gives a net in evaluation mode"
    for key, value in model.state_dict().items():
        assert value.dtype == np.float32 and np.all(np.isfinite(value)), key
    info = weights_info(name)
    stored = {v.dtype for v in info["state"].values()}
    assert stored == {np.dtype(np.float16)}, f"{name}: stored as {stored}, expected float16"
    assert info["run"]["iteration"] == info["run"]["total"] > 0, f"{name}: not the weights of a finished run"
    assert info["float16"]["largest_response_std_change"] < 0.01, (
        f"{name}: float16 storage changes a layer's response std by "
        f"{100 * info['float16']['largest_response_std_change']:.2g}%")


@pytest.mark.parametrize("name", list(NETS))
def test_the_shipped_weights_describe_their_run_without_machine_paths(name):
    """Lessons 07 and 08 print describe_weights: the recorded command of a run trained in another
    checkout, with absolute --data-dir and --out, must read as run from the repository's root."""
    text = describe_weights(name)
    absolute = [word for word in text.split() if word.startswith("/")]
    assert not absolute, f"{name}: describe_weights prints machine paths {absolute}:\n{text}"
    assert "--out lessons/results/" in text, text


def test_the_shipped_weights_come_from_the_committed_runs_of_one_experiment():
    """Each file names the run it was exported from; that run's log and config are committed, its
    last log row is the one the file recorded, and all four nets come from the same experiment."""
    sources = {}
    for name in NETS:
        run_info = weights_info(name)["run"]
        folder = experiments.LESSONS.parent / run_info["source"]
        assert (folder / "log.csv").is_file() and (folder / "config.json").is_file(), (
            f"{name}: exported from {run_info['source']}, whose log.csv and config.json are not in the repository")
        log = read_log(folder)
        assert log["iteration"][-1] == run_info["iteration"] and log["test_error"][-1] == pytest.approx(run_info["test_error"]), (
            f"{name}: the file records iteration {run_info['iteration']}, test error {run_info['test_error']}%, "
            f"but {run_info['source']}/log.csv ends at iteration {log['iteration'][-1]}, {log['test_error'][-1]}%: "
            f"export the weights again")
        sources[name] = folder.parent.name
    assert len(set(sources.values())) == 1, f"the four nets come from different experiments: {sources}"


def test_the_shipped_weights_are_small():
    size = sum((WEIGHTS / f"{name}.npz").stat().st_size for name in NETS)
    assert size < MAX_MB * 1e6, f"lessons/weights/ holds {size / 1e6:.1f} MB; keep it under {MAX_MB} MB"


def test_a_missing_weights_file_is_one_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="no weights file there.*export_weights"):
        trained_model("resnet20", tmp_path)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    data = write_fake_cifar(root / "data", per_file=8)
    out = root / "runs" / "resnet8"
    run(depth=8, iterations=3, batch_size=8, data_dir=str(data), out=str(out), quiet=True)
    return out, data


def test_export_writes_float16_weights_that_load_back(finished_run, tmp_path):
    run_dir, data = finished_run
    path, info = export_weights(run_dir, folder=tmp_path, images=20, data_dir=str(data))
    assert path == tmp_path / "resnet8.npz" and path.is_file()
    with np.load(path, allow_pickle=False) as npz:   # no pickle anywhere in the file
        assert len(npz.files) > 1
    ckpt = experiments.load_checkpoint(run_dir / "checkpoint.npz")["model"]
    model = trained_model("resnet8", tmp_path)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, ckpt[key].astype(np.float16).astype(np.float32), err_msg=key)
    assert info["run"]["iteration"] == 3 and info["run"]["test_error"] == read_log(run_dir)["test_error"][-1]
    f16 = info["float16"]
    assert f16["images"] == 8 and 0 <= f16["predictions_changed"] <= 8   # the fake test set has 8 images
    assert "float16" in experiments.describe_weights("resnet8", tmp_path)


def test_a_run_folder_serves_as_a_source_too(finished_run):
    run_dir, _ = finished_run
    model = trained_model("resnet8", run_dir.parent)
    ckpt = experiments.load_checkpoint(run_dir / "checkpoint.npz")["model"]
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, ckpt[key], err_msg=key)


def test_an_unfinished_run_is_not_exported(finished_run, tmp_path):
    run_dir, data = finished_run
    stopped = tmp_path / "stopped"
    run(depth=8, iterations=6, batch_size=8, data_dir=str(data), out=str(stopped), quiet=True)
    log = (stopped / "log.csv").read_text().splitlines()
    (stopped / "log.csv").write_text("\n".join(log[:-1]) + "\n")   # as if stopped after the first epoch
    with pytest.raises(WeightsError, match="not finished"):
        export_weights(stopped, folder=tmp_path, data_dir=str(data))


def test_training_images_are_the_nets_subset_normalized_like_the_test_images(tmp_path):
    """Lesson 07 compares a net on its own training images with the test images: the first images
    of the subset it trained on, normalized with that subset's per-pixel mean, as test_images."""
    from tinyresnet.data import load_cifar10, normalize, per_pixel_mean, subset
    from tinyresnet.train import DATA_SEED
    data = write_fake_cifar(tmp_path / "data", per_file=8)
    x_train, y_train, x_test, _ = load_cifar10(data)
    xs, ys = subset(x_train, y_train, 20, seed=DATA_SEED)
    x, y = experiments.training_images(5, data_dir=data, subset_size=20)
    np.testing.assert_array_equal(y, ys[:5])
    np.testing.assert_allclose(x, normalize(xs[:5], per_pixel_mean(xs)))
    xt, _ = experiments.test_images(5, data_dir=data, subset_size=20)
    np.testing.assert_allclose(xt, normalize(x_test[:5], per_pixel_mean(xs)))
