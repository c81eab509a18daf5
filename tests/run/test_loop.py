"""The loop owns its epoch (issue 29): train.py draws its own batches, resume only says where to
start, and checking a loss changes nothing in the run's state."""
import numpy as np
import pytest

from tinyresnet import train
from tinyresnet.run import stops
from tinyresnet.run.recipe import Recipe

pytest.register_assert_rewrite("train_helpers")
pytest_plugins = ["train_helpers"]  # its fixtures: fake, no_network
pytestmark = pytest.mark.train


@pytest.fixture
def state(fake, tmp_path, no_network):
    """A freshly built run on the tiny fake CIFAR-10: 3 batches per epoch."""
    return train.build(Recipe(depth=8, batch_size=8, iterations=6, data_dir=str(fake), out=str(tmp_path)))


def test_an_epoch_taken_up_after_some_steps_gives_the_batches_it_would_have(state):
    whole = list(train.epoch_batches(state, 0))
    state.rng.bit_generator.state = state.epoch_rng   # where a resumed run stands: the epoch's start
    rest = list(train.epoch_batches(state, 1))
    assert len(whole) == state.batches_per_epoch and len(rest) == len(whole) - 1
    for (x, y), (x_again, y_again) in zip(whole[1:], rest):
        np.testing.assert_array_equal(x, x_again, err_msg="skipping the first batch changed the next ones' "
                                                          "shuffle or augmentation: a resumed epoch would differ")
        np.testing.assert_array_equal(y, y_again)


def test_the_next_epoch_starts_where_the_last_one_ended(state):
    """No rewinding between epochs: the generator simply goes on, so a fresh run needs nothing from resume."""
    first = [y for _, y in train.epoch_batches(state, 0)]
    second = [y for _, y in train.epoch_batches(state, 0)]
    assert not all(np.array_equal(a, b) for a, b in zip(first, second)), "two epochs drew the same shuffle"


def test_checking_a_loss_changes_nothing(state):
    """check_finite only checks; the loop records where the loss was last seen finite itself."""
    state.opt.steps, state.checked = 4, 2   # at iteration 4; the loss was last read at 2
    stops.check_finite(state, 1.25, "training loss")
    assert state.checked == 2, "check_finite quietly changed state.checked"
    with pytest.raises(stops.Diverged, match="training loss is nan at iteration 4"):
        stops.check_finite(state, float("nan"), "training loss")
