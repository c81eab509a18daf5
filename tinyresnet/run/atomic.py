"""Writing a file so that nobody ever sees half of it, and nothing half-written stays behind.

A reader sees either the old file or the new one: the new one is written under a temporary
name in the same folder (.checkpoint.npz.k2j1x9.tmp), and then renamed over the old one with
os.replace, which is a single step for the file system. If the write fails (a full disk,
say), the temporary file is removed and the old file is untouched. A process killed in the
middle (kill -9, a power cut) cannot clean up: the next run sweeps what it left (`sweep`).
"""
import contextlib
import os
import tempfile
from pathlib import Path

SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_write(path, mode="w", durable=False, **open_options):
    """with atomic_write(path) as f: write to f; path holds all of it afterwards, or is as it was.

    durable=True also flushes the file and its folder to the disk (fsync) before and after the
    rename, so that a power cut cannot lose a file that was reported written. An OSError
    raised inside names path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_options) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise naming(e, path) from None
        raise
    if durable:
        _fsync_folder(path.parent)


def naming(error, path):
    """The OSError `error` with `path` as its file name, if it had none ("[Errno 28] No space left...")."""
    if error.filename is not None or error.errno is None:
        return error
    return type(error)(error.errno, error.strerror, str(path))


def sweep(folder, names):
    """Remove the temporary files that writes of these files (names in folder) killed in the
    middle left behind; returns their names."""
    left = sorted(p for name in names for p in Path(folder).glob(f".{name}.*{SUFFIX}") if p.is_file())
    for p in left:
        p.unlink()
    return [p.name for p in left]


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
