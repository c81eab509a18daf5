"""Lesson 04: SGD with momentum and weight decay, and the paper's learning-rate schedules."""
import pickle

import numpy as np
import pytest

from tinyresnet import Tensor, nn
from tinyresnet.optim import SGD, StepDecay, Warmup, paper_schedule

from conftest import host

pytestmark = pytest.mark.optim


def param(xp, values):
    """A float32 Parameter on xp's device holding a copy of `values`."""
    p = nn.Parameter(np.array(values, dtype=np.float32))  # np.array copies: steps must not write into `values`
    p.data = xp.asarray(p.data)
    return p


# ------------------------------------------------------------ SGD

def test_two_steps_by_hand(xp, rng):
    """g = grad + wd * w;  v = momentum * v + g (v = g on the first step);  w = w - lr * v."""
    lr, momentum, wd = 0.1, 0.9, 1e-2
    w0 = rng.standard_normal(5).astype(np.float32)
    g1, g2 = rng.standard_normal((2, 5)).astype(np.float32)
    p = param(xp, w0)
    opt = SGD([p], lr=lr, momentum=momentum, weight_decay=wd)

    p.grad = xp.asarray(g1)
    opt.step()
    v1 = g1 + wd * w0
    w1 = w0 - lr * v1
    np.testing.assert_allclose(host(p), w1, rtol=1e-6, err_msg="first SGD step: w - lr * (grad + wd * w)")

    p.grad = xp.asarray(g2)
    opt.step()
    v2 = momentum * v1 + g2 + wd * w1
    np.testing.assert_allclose(host(p), w1 - lr * v2, rtol=1e-6,
                               err_msg="second SGD step: the velocity remembers momentum * previous velocity")
    assert p.dtype == np.float32, "an SGD step must keep float32 parameters float32"


def test_parameters_without_gradient_are_left_alone(xp):
    a, b = param(xp, [1.0, 2.0]), param(xp, [3.0, 4.0])
    opt = SGD([a, b], lr=0.1)
    a.grad = xp.ones(2, dtype=xp.float32)
    opt.step()
    np.testing.assert_array_equal(host(b), [3.0, 4.0])
    assert opt.velocity[1] is None


def test_zero_grad(xp):
    p = param(xp, [1.0])
    p.grad = xp.ones(1, dtype=xp.float32)
    opt = SGD([p])
    opt.zero_grad()
    assert p.grad is None


def test_no_parameters_raises():
    with pytest.raises(ValueError, match="no parameters"):
        SGD([])


def test_step_does_not_build_a_graph(xp):
    p = param(xp, [1.0, 2.0])
    p.grad = xp.ones(2, dtype=xp.float32)
    SGD([p]).step()
    assert p._parents == () and p.requires_grad


@pytest.mark.torch
@pytest.mark.parametrize("momentum, wd", [(0.9, 1e-4), (0.9, 5e-2), (0.0, 0.0)],
                         ids=["paper", "strong-decay", "plain"])
def test_matches_pytorch(momentum, wd, torch, xp, rng):
    shapes = [(4, 3), (3,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(5)]

    ours = [param(xp, w) for w in init]
    opt = SGD(ours, lr=0.1, momentum=momentum, weight_decay=wd)
    theirs = [torch.tensor(w, requires_grad=True) for w in init]
    topt = torch.optim.SGD(theirs, lr=0.1, momentum=momentum, weight_decay=wd)
    for step, gs in enumerate(grads):
        for p, t, g in zip(ours, theirs, gs):
            p.grad = xp.asarray(g)
            t.grad = torch.tensor(g)
        opt.step()
        topt.step()
        for i, (p, t) in enumerate(zip(ours, theirs)):
            np.testing.assert_allclose(host(p), t.detach().numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=f"parameter {i} after step {step + 1} differs from torch.optim.SGD")


def run_steps(opt, params, grads, xp):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = xp.asarray(g)
        opt.step()
    return [host(p).copy() for p in params]


def test_state_dict_round_trip_continues_identically(xp, rng):
    """Resuming from a checkpoint (pickled to disk) continues exactly where training stopped."""
    init = [rng.standard_normal(3).astype(np.float32), rng.standard_normal(2).astype(np.float32)]
    grads = [[rng.standard_normal(3).astype(np.float32), rng.standard_normal(2).astype(np.float32)]
             for _ in range(6)]
    a = [param(xp, w) for w in init]
    opt_a = SGD(a, lr=0.05, momentum=0.9, weight_decay=1e-3)
    run_steps(opt_a, a, grads[:3], xp)
    checkpoint = pickle.dumps(([host(p).copy() for p in a], opt_a.state_dict()))

    weights, state = pickle.loads(checkpoint)
    b = [param(xp, w) for w in weights]
    opt_b = SGD(b, lr=1.0, momentum=0.0, weight_decay=0.0)   # hyper-parameters come from the state
    opt_b.load_state_dict(state)
    assert (opt_b.lr, opt_b.momentum, opt_b.weight_decay) == (0.05, 0.9, 1e-3)

    final_a = run_steps(opt_a, a, grads[3:], xp)
    final_b = run_steps(opt_b, b, grads[3:], xp)
    for i, (wa, wb) in enumerate(zip(final_a, final_b)):
        np.testing.assert_array_equal(wb, wa, err_msg=f"parameter {i}: the resumed optimizer diverged")


def test_state_dict_is_a_snapshot(rng):
    p = nn.Parameter(rng.standard_normal(3))
    opt = SGD([p], lr=0.1)
    p.grad = np.ones(3, dtype=np.float32)
    opt.step()
    state = opt.state_dict()
    saved = state["velocity"][0].copy()
    opt.step()
    np.testing.assert_array_equal(state["velocity"][0], saved,
                                  err_msg="a later step changed the velocity stored in the state_dict")


def test_load_state_dict_with_wrong_parameter_count_raises(xp):
    opt = SGD([param(xp, [1.0]), param(xp, [2.0])])
    with pytest.raises(ValueError, match="optimizer state has 1 buffers, this optimizer has 2 parameters"):
        opt.load_state_dict(SGD([param(xp, [1.0])]).state_dict())


BAD_STATES = {  # a damaged or crafted checkpoint: each of these was taken and crashed a later step
    "steps a float": ("steps", 2.0, r"steps must be a whole number >= 0, got 2\.0"),
    "momentum as text": ("momentum", "0.9", r"momentum must be a finite number >= 0, got '0\.9'"),
    "momentum of 1": ("momentum", 1.0, r"momentum must be below 1, got 1\.0"),
    "lr as text": ("lr", "fast", r"lr must be a finite number >= 0, got 'fast'"),
    "weight decay nan": ("weight_decay", float("nan"), r"weight_decay must be a finite number >= 0, got nan"),
    "a buffer of another shape": ("velocity", [np.zeros((2, 2), np.float32), None],
                                  r"momentum buffer 0 is an array of shape \(2, 2\) \(float32\), its "
                                  r"parameter has shape \(3,\)"),
    "a buffer of text": ("velocity", ["abc", None], r"momentum buffer 0 is 'abc'"),
}


@pytest.mark.parametrize("key, value, message", BAD_STATES.values(), ids=BAD_STATES.keys())
def test_load_state_dict_refuses_a_state_that_would_fail_later_and_changes_nothing(key, value, message):
    params = [param(np, [1.0, 2.0, 3.0]), param(np, [4.0])]
    opt = SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    state = {**opt.state_dict(), key: value}
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(state)
    assert (opt.steps, opt.lr, opt.momentum, opt.weight_decay, opt.velocity) == (0, 0.1, 0.9, 1e-4, [None, None])


def test_warmup_refuses_a_state_that_is_not_its_own():
    with pytest.raises(ValueError, match=r"warm-up state must be \{'done': True or False\}, got \{'done': 'yes'\}"):
        Warmup(StepDecay(0.1, [10])).load_state_dict({"done": "yes"})


def test_converges_on_least_squares(xp, rng):
    """Fit w in A w = y: the loss goes down to ~0 and w reaches the solution."""
    a = rng.standard_normal((20, 3)).astype(np.float32)
    w_true = np.array([1.5, -2.0, 0.5], dtype=np.float32)
    y = a @ w_true
    A, Y = Tensor(xp.asarray(a)), Tensor(xp.asarray(y))
    w = param(xp, np.zeros(3))
    opt = SGD([w], lr=0.1, momentum=0.9, weight_decay=0.0)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        r = A @ w - Y
        loss = (r * r).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-6 * losses[0], f"loss went from {losses[0]:.3g} to only {losses[-1]:.3g}"
    np.testing.assert_allclose(host(w), w_true, atol=1e-3)


# ------------------------------------------------------------ schedules

def test_step_decay_at_the_milestones():
    """The paper: 0.1, divided by 10 at 32k and again at 48k iterations."""
    lr = StepDecay(0.1, [32000, 48000])
    for iteration, want in [(0, 0.1), (31999, 0.1), (32000, 0.01), (47999, 0.01), (48000, 0.001),
                            (64000, 0.001)]:
        assert lr(iteration) == pytest.approx(want), f"StepDecay at iteration {iteration}"


def test_step_decay_sorts_milestones_and_uses_gamma():
    lr = StepDecay(1.0, [20, 10], gamma=0.5)
    assert [lr(i) for i in (9, 10, 19, 20)] == [1.0, 0.5, 0.5, 0.25]


def test_warmup_holds_until_error_below_threshold():
    """ResNet-110: lr 0.01 until training error < 80%, then the normal schedule (0.1, ...)."""
    lr = Warmup(StepDecay(0.1, [32000, 48000]), warmup_lr=0.01, until_error=0.8)
    assert lr(0) == 0.01 and lr(399) == 0.01
    lr.observe(0.9)
    lr.observe(0.8)
    assert lr(400) == 0.01, "an error of exactly 80% is not below 80%: keep warming up"
    lr.observe(0.79)
    assert lr(400) == pytest.approx(0.1), "after the error drops below 80% the schedule takes over"
    lr.observe(0.95)
    assert lr(401) == pytest.approx(0.1), "warm-up ends once; a later bad batch does not restart it"
    assert lr(32000) == pytest.approx(0.01) and lr(48000) == pytest.approx(0.001)


def test_warmup_state_dict_round_trip():
    lr = Warmup(StepDecay(0.1, [100]))
    lr.observe(0.5)
    resumed = Warmup(StepDecay(0.1, [100]))
    assert resumed(5) == 0.01
    resumed.load_state_dict(pickle.loads(pickle.dumps(lr.state_dict())))
    assert resumed(5) == pytest.approx(0.1) and resumed(100) == pytest.approx(0.01)
    done = Warmup(StepDecay(0.1, [100]))
    done.observe(0.5)
    assert done(5) == pytest.approx(0.1)
    done.load_state_dict(Warmup(StepDecay(0.1, [100])).state_dict())
    assert done(5) == 0.01, ("a state saved during warm-up resumes in warm-up, even into a schedule "
                             "whose warm-up had ended: load_state_dict must set `done`, not only raise it")


def test_step_decay_has_no_state_to_save():
    """A step schedule is a function of the iteration alone: the checkpoint holds nothing for it,
    and loading that nothing leaves it as it was."""
    lr = StepDecay(0.1, [10])
    assert lr.state_dict() == {}, f"StepDecay's state_dict should be empty, got {lr.state_dict()}"
    lr.load_state_dict({})
    assert lr(9) == pytest.approx(0.1) and lr(10) == pytest.approx(0.01)


def test_sgd_follows_its_schedule(rng):
    """SGD(lr=schedule) asks the schedule before every step; lr is then the last step's rate."""
    p = nn.Parameter(np.ones(1, dtype=np.float32))
    opt = SGD([p], lr=StepDecay(1.0, [2]), momentum=0.0, weight_decay=0.0)
    moves = []
    for _ in range(3):
        before = host(p).copy()
        p.grad = np.ones(1, dtype=np.float32)
        opt.step()
        moves.append(float((before - host(p))[0]))
    assert moves == pytest.approx([1.0, 1.0, 0.1]), "the steps should use lr 1, 1, then 0.1 after iteration 2"
    assert opt.steps == 3 and opt.lr == pytest.approx(0.1)


def test_sgd_state_carries_the_step_count_and_the_warmup():
    p = nn.Parameter(np.ones(1, dtype=np.float32))
    opt = SGD([p], lr=Warmup(StepDecay(0.1, [5])))
    opt.schedule.observe(0.5)
    p.grad = np.ones(1, dtype=np.float32)
    opt.step()
    again = SGD([nn.Parameter(np.ones(1, dtype=np.float32))], lr=Warmup(StepDecay(0.1, [5])))
    again.load_state_dict(pickle.loads(pickle.dumps(opt.state_dict())))
    assert again.steps == 1 and again.schedule.done, "the resumed optimizer lost its step count or warm-up"


def test_paper_schedule_drops_at_half_and_three_quarters_and_says_so():
    schedule = paper_schedule(0.1, 64000)
    assert schedule.milestones == [32000, 48000]
    assert str(schedule) == "lr 0.1, /10 at iterations 32000 and 48000"
    assert str(paper_schedule(0.1, 195, warmup=True)) == ("lr 0.1, /10 at iterations 97 and 146; "
                                                          "warm-up at 0.01 until training error < 80%")


def test_the_warmup_lr_is_a_tenth_of_the_lr():
    """The paper warms ResNet-110 up at 0.01 for its LR of 0.1; a smaller batch with a linearly
    scaled LR (batch 32, LR 0.025) warms up at a tenth of that LR too (0.0025), not at 0.01."""
    assert paper_schedule(0.1, 100, warmup=True)(0) == pytest.approx(0.01)
    scaled = paper_schedule(0.025, 100, warmup=True)
    assert scaled(0) == pytest.approx(0.0025), f"warm-up LR {scaled(0):g} at --lr 0.025, want 0.0025"
    scaled.observe(0.5)
    assert scaled(0) == pytest.approx(0.025)
