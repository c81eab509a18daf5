"""What a run writes to the terminal: lines that any terminal can show, and warnings on stderr.

A folder name need not be valid text: on Linux it is bytes, and Python carries the bytes it
cannot decode as stand-in characters that a strict UTF-8 terminal refuses to print. `say`
writes them as escapes (\\udcff) instead of failing, so that a run into such a folder trains
like any other.
"""
import sys


def say(text, file=None):
    """print(text) to file (default stdout), with what its encoding cannot show escaped."""
    file = sys.stdout if file is None else file
    print(printable(text, file), file=file)


def printable(text, file):
    """text with every character that file's encoding cannot write as a backslash escape."""
    encoding = getattr(file, "encoding", None) or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding)


def warn(message):
    """One line on stderr, even with --quiet: something the user should know, that does not stop the run."""
    say(f"tinyresnet.train: warning: {message}", sys.stderr)


def plural(count, word):
    """'1 iteration', '2 iterations', '0.5 epochs' (count: a number, or a number already written out)."""
    return f"{count} {word}{'' if str(count) == '1' else 's'}"
