"""The check cells of the lessons: your exercise functions, run through the library's own tests.

One module per lesson, named after its notebook, plus the shared harness:

    lessons/NN_topic.ipynb   ->   lessons/checks/topic.py     (from checks.topic import check_...)
    harness.py                    @check(...), case(...), Mismatch, returned(...): what every lesson shares

Every check_* function takes the function(s) you wrote, builds from them what the library
would build (usually a Tensor op via `Tensor.from_op`), and runs `tinyresnet.gradcheck` or
compares the result with tinyresnet's own implementation, on the shapes of the tests in
tests/. It never raises into the notebook; it prints one of

    ✓ PASSED <what was checked>                       and returns True
    … <function> not written yet: fill in the cell ... (the stub still raises NotImplementedError)
    ✗ FAILED <what>: where it went wrong (the test case), numeric vs analytic, and a hint

and returns False in the last two cases.

Adding a lesson's checks: write lessons/checks/<topic>.py with `@check`-decorated functions
that call the library (never a copy of it), add the lesson to lessons/lesson_map.py, and add
planted wrong implementations for each exercise to tests/test_lesson_checks.py.
"""
