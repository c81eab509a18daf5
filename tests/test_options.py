"""The options of the training command: run()'s keywords and the command line must agree."""
import pytest

from tinyresnet import options
from tinyresnet.options import UsageError, argv_for, parse_args, spelled

pytestmark = pytest.mark.train

EVERY_OPTION_CHANGED = dict(depth=56, residual=False, shortcut="B", epochs=3, subset=500,
                            test_subset=100, val_split=True, warmup=True, batch_size=64, lr=0.05,
                            momentum=0.8, weight_decay=5e-4, device="gpu", data_dir="d",
                            out="o", resume=True, seed=7, quiet=True)


def test_argv_for_gives_back_the_same_options():
    args = vars(parse_args(argv_for(**EVERY_OPTION_CHANGED)))
    wrong = {k: (v, args[k]) for k, v in EVERY_OPTION_CHANGED.items() if args[k] != v}
    assert not wrong, f"argv_for lost these options (asked, parsed): {wrong}"


def test_argv_for_leaves_defaults_out_so_resume_can_fill_them():
    assert argv_for(depth=20, residual=True, lr=0.1, subset=None, quiet=False) == []
    assert argv_for(depth=20.0) == ["--depth", "20.0"], "a float 20.0 is not the int default"


def test_argv_for_names_an_unknown_option():
    with pytest.raises(UsageError, match="unknown option 'lr_decay'"):
        argv_for(lr_decay=0.5)


def test_spelled_writes_options_as_typed():
    values = dict(depth=20, residual=False, subset=None, warmup=True, lr=0.1)
    assert spelled(values, list(values)) == "--depth 20 --plain no --subset --warmup --lr 0.1"


def test_the_recipe_names_only_real_options():
    known = vars(parse_args([]))
    assert set(options.RECIPE) <= set(known), set(options.RECIPE) - set(known)
