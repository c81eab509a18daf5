"""A run's options: one Recipe, the command line generated from it, and the two agreeing."""
import pytest

from tinyresnet.run.recipe import FIELDS, Recipe, UsageError, build_parser, parse_command_line, spelled

pytestmark = pytest.mark.train

EVERY_OPTION_CHANGED = dict(depth=56, residual=False, shortcut="B", epochs=3, subset=500,
                            test_subset=100, val_split=True, warmup=True, batch_size=64, bn_batch=32, lr=0.05,
                            momentum=0.8, weight_decay=5e-4, device="gpu", data_dir="d",
                            out="o", resume=True, seed=7, quiet=True)


def test_the_command_line_gives_back_the_same_recipe():
    recipe = Recipe(**EVERY_OPTION_CHANGED)
    parsed, typed, argv = parse_command_line(recipe.argv())
    wrong = {k: (v, getattr(parsed, k)) for k, v in EVERY_OPTION_CHANGED.items() if getattr(parsed, k) != v}
    assert not wrong, f"the command line lost these options (asked, parsed): {wrong}"
    assert typed == set(EVERY_OPTION_CHANGED), "every option typed should count as typed"


def test_argv_leaves_defaults_out_so_resume_can_fill_them():
    assert Recipe(depth=20, residual=True, lr=0.1, subset=None, quiet=False).argv() == []
    assert Recipe(depth=56, residual=False).argv() == ["--depth", "56", "--plain"]


def test_the_parser_has_one_option_per_field():
    dests = {a.dest for a in build_parser()._actions if a.dest != "help"}
    assert dests == {f.name for f in FIELDS}


def test_an_unknown_option_is_named():
    with pytest.raises(TypeError, match="lr_decay"):
        Recipe(lr_decay=0.5)


@pytest.mark.parametrize("options, message", [
    (dict(depth=21), r"--depth: depth must be 6n\+2"),
    (dict(lr="0.1"), "--lr must be a number, got '0.1'"),
    (dict(subset=2.5), "--subset must be a whole number, got 2.5"),
    (dict(shortcut="C"), "--shortcut must be one of A, B"),
    (dict(epochs=2, iterations=5), "give one of them, not both"),
    (dict(batch_size=0), "--batch-size must be at least 1"),
    (dict(bn_batch=0), "--bn-batch must be at least 1"),
    (dict(batch_size=128, bn_batch=48), "--bn-batch 48 must divide --batch-size 128 into equal slices"),
], ids=["depth", "lr type", "subset type", "shortcut", "epochs and iterations", "batch size", "bn batch",
        "bn batch divides"])
def test_python_callers_get_the_command_lines_checks(options, message):
    with pytest.raises(UsageError, match=message):
        Recipe(**options)


def test_resolved_fills_the_length_and_the_folder():
    r = Recipe(depth=56, residual=False).resolved()
    assert r.iterations == 64000 and r.epochs is None and r.out == "runs/plain56"
    assert Recipe(epochs=2).resolved().iterations is None


def test_spelled_writes_options_as_typed():
    values = dict(depth=20, residual=False, subset=None, warmup=True, lr=0.1)
    assert spelled(values, list(values)) == "--depth 20 --plain no --subset --warmup --lr 0.1"
