"""What every check cell shares: run a check, print one verdict, never raise into the notebook.

A check is a function decorated with `@check(title, ...)` that raises on failure:

* `NotImplementedError` (the stub is still there)      -> `… <function> not written yet: ...`
* `GradcheckError` (from `tinyresnet.gradcheck`)       -> `✗ FAILED` + numeric vs analytic + the op's hint
* `Mismatch` (raised by the check, with a teaching message) -> `✗ FAILED` + that message
* anything else (the learner's code raised)            -> `✗ FAILED` + the error, the learner's line,
  the test case it happened in, and the op's shape hint

and returns a one-line summary on success (`✓ PASSED <title>: <summary>`). The decorated
function returns True or False. Wrap the calls of one test case in `with case("stride 2,
padding 0"):` so that a failure inside names it.
"""
import contextlib
import functools
import inspect
import traceback
from pathlib import Path

from tinyresnet import GradcheckError

PASSED = "✓ PASSED"
FAILED = "✗ FAILED"
NOT_WRITTEN = "not written yet: fill in the cell above, then run this cell again"
GENERIC_HINT = "a gradient always has the shape of what it is the gradient of."


class Mismatch(AssertionError):
    """Your result differs from the expected one; the message says where and why."""


@contextlib.contextmanager
def case(description):
    """Label what runs inside with its test case; the innermost label wins."""
    try:
        yield
    except Exception as e:
        if getattr(e, "check_case", None) is None:
            try:
                e.check_case = description
            except AttributeError:  # an exception type that takes no attributes
                pass
        raise


def check(title, shape_hint=GENERIC_HINT, value_hint=None):
    """Turn a function that raises on failure into a check that prints and returns True/False.

    title: what is checked, usually the learner's function.
    shape_hint: printed when the learner's code raises a shape error (ValueError, IndexError):
        what the shapes of this op must be. A string, or a dict {parameter name: hint} when a
        check takes several functions (the hint of the one that raised is printed).
    value_hint: printed under a failed gradient check, in place of gradcheck's generic hint:
        the likely slip for this op. A string, or a function of the learner's functions that
        returns one (it may try them on a small input to name the slip).
    """
    def wrap(run_check):
        names = list(inspect.signature(run_check).parameters)

        @functools.wraps(run_check)
        def run(*fns):
            try:
                summary = run_check(*fns)
            except NotImplementedError as e:
                print(f"… {_raiser(e) or title} {NOT_WRITTEN}")
                return False
            except GradcheckError as e:  # first: a GradcheckError is an AssertionError too
                hint = _value_hint(value_hint, fns)
                print(f"{FAILED} {title}{_in_case(e)}: your backward pass disagrees with central "
                      f"differences.\n{_with_hint(str(e), hint)}")
                return False
            except Mismatch as e:
                label = getattr(e, "check_case", None)
                where = _in_case(e) if label and label not in str(e) else ""
                print(f"{FAILED} {title}{where}:\n{e}")
                return False
            except Exception as e:  # a bug in the learner's code: show it, do not crash the notebook
                hint = _shape_hint(shape_hint, e, dict(zip(names, fns)))
                print(f"{FAILED} {title}{_in_case(e)}: your code raised {type(e).__name__}: {e}"
                      f"{_where(e)}{hint}")
                return False
            print(f"{PASSED} {title}: {summary}")
            return True
        return run
    return wrap


HOOKS_LEFT_HINT = ("keep the handles that register_forward_hook returns and call handle.remove() on each when "
                   "the forward pass is done (in a finally:, so that they come off after an error too).")


def hooks_left_on(model):
    """How many forward hooks are still registered anywhere in the model."""
    return sum(len(vars(m).get("_forward_hooks", ())) for m in model.modules())


def returned(result, fn_name, expected):
    """result must be an array, or a tuple of arrays, with the (name, shape) pairs in `expected`."""
    names = ", ".join(name for name, _ in expected)
    if len(expected) == 1:
        result = (result,)
    elif not isinstance(result, (tuple, list)):
        raise Mismatch(f"{fn_name} must return a tuple ({names}), got {describe(result)}")
    elif len(result) != len(expected):
        raise Mismatch(f"{fn_name} must return a tuple of {len(expected)} ({names}), got a "
                       f"{type(result).__name__} of {len(result)}")
    for value, (name, shape) in zip(result, expected):
        if not hasattr(value, "shape"):
            raise Mismatch(f"{fn_name} returned {name} = {describe(value)}; "
                           f"it must be an array of shape {shape}")
        if tuple(value.shape) != tuple(shape):
            raise Mismatch(f"{fn_name} returned {name} of shape {tuple(value.shape)}, expected "
                           f"{tuple(shape)}.\nhint: {GENERIC_HINT}")
    return result


def describe(value):
    """A short description of a value for a message: its shape, or its type and value."""
    if hasattr(value, "shape"):
        return f"an array of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:80]


# ------------------------------------------------------------------ messages

def _is_shape_error(e):
    words = ("shape", "dimension", "broadcast", "size", "index", "axis", "align")
    return isinstance(e, (ValueError, IndexError)) and any(w in str(e).lower() for w in words)


def _shape_hint(shape_hint, e, fns):
    if not _is_shape_error(e):
        return ""
    if isinstance(shape_hint, dict):
        shape_hint = shape_hint.get(_culprit(e, fns), GENERIC_HINT)
    return f"\nhint: {shape_hint}"


def _culprit(e, fns):
    """Which of the learner's functions ({parameter name: function}) raised e: the innermost one."""
    codes = {getattr(fn, "__code__", None): name for name, fn in fns.items()}
    found = None
    for frame, _ in traceback.walk_tb(e.__traceback__):
        found = codes.get(frame.f_code, found)
    return found


def _in_case(e):
    where = getattr(e, "check_case", None)
    return f" (case: {where})" if where else ""


def _value_hint(value_hint, fns):
    if callable(value_hint):
        try:
            return value_hint(*fns)
        except Exception:  # the learner's code raised while we looked for the slip: no guess then
            return None
    return value_hint


def _with_hint(message, hint):
    """gradcheck's message with its generic last resort replaced by the op's own hint."""
    if not hint:
        return message
    body, sep, library_hint = message.rpartition("\nhint: ")
    if not sep:
        return f"{message}\nhint: {hint}"
    if library_hint.startswith("the formula is off"):   # gradcheck's catch-all: say this op's slip instead
        return f"{body}\nhint: {hint}"
    return f"{message}\nalso: {hint}"


def _learner_frames(e):
    """Traceback frames outside lessons/checks, tinyresnet and NumPy: the learner's own lines."""
    here = Path(__file__).resolve().parent
    skip = (str(here), str(here.parent.parent / "tinyresnet"))
    return [f for f in traceback.extract_tb(e.__traceback__)
            if not f.filename.startswith(skip) and "/numpy/" not in f.filename]


def _raiser(e):
    frames = _learner_frames(e)
    return frames[-1].name if frames else None


def _where(e):
    frames = _learner_frames(e)
    if not frames:
        return ""
    f = frames[-1]
    line = f"\n    {f.line.strip()}" if f.line else ""
    return f"\n  in {f.name}, line {f.lineno}:{line}"
