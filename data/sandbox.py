"""Parse uploads in a child process with a time and memory bound.

The guards in :mod:`data.guards` refuse known attacks before parsing, but a parser can still
meet something new. The app therefore reads uploads in a child process (``python -m
data.sandbox``) that sets ``RLIMIT_AS`` to its size after start-up plus ``memory_bytes``, and is
killed after ``timeout_s``. When either bound is hit, the child dies alone and the user gets a
clear message; the server and the other sessions carry on. Starting the child costs about half
a second (importing pandas), small next to reading a real extract.

The child reports its phase (``read``, ``check``) and the fraction done through a small progress
file that the parent polls, so the Upload page can show a progress bar while a bank-sized extract
(1M accounts: ~150 MB of CSV or a ~70 MB workbook) is read and checked.
"""

from __future__ import annotations

import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data.report import ExtractError

__all__ = ["parse_isolated", "TIMEOUT_S", "MEMORY_BYTES"]

TIMEOUT_S = 600.0            # seconds for reading and validating one upload (5M accounts: ~1 min)
MEMORY_BYTES = 8 * 2**30     # bytes of address space a parse may add to the child (5M accounts: ~3 GB
                             # resident; the columnar engines reserve more address space than they use)
ROOT = Path(__file__).resolve().parents[1]


def _vm_size() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _refused(rule: str, detail: str, name: str):
    return None, ExtractError.of(rule, sheet=name, detail=detail, expected="a spreadsheet").report


def parse_isolated(files: list[tuple[str, bytes]], timeout_s: float = TIMEOUT_S,
                   memory_bytes: int = MEMORY_BYTES, progress=None):
    """:func:`data.ingest.parse_uploads` in a bounded child process.

    Parameters
    ----------
    files : list of (str, bytes)
        File names and contents as uploaded.
    timeout_s : float
        Seconds before the child is killed.
    memory_bytes : int
        Bytes of address space the child may add beyond its size after start-up.
    progress : callable, optional
        ``progress(phase, fraction)`` with ``phase`` ``read`` or ``check`` and ``fraction`` in
        0..1, called from this (the parent's) thread while the child works.

    Returns
    -------
    tuple of (Extract or None, Report)
        As :func:`data.ingest.parse_uploads`; when a bound is hit, ``None`` and a report
        saying which.
    """
    name = ", ".join(n for n, _ in files)
    with tempfile.TemporaryDirectory(prefix="jixiao-upload-") as tmp:
        inbox, outbox, status = Path(tmp) / "in.pickle", Path(tmp) / "out.pickle", Path(tmp) / "progress"
        inbox.write_bytes(pickle.dumps(files, protocol=pickle.HIGHEST_PROTOCOL))
        errors = Path(tmp) / "stderr"
        with errors.open("wb") as err:      # a file, not a pipe: a chatty child can never block on it
            proc = subprocess.Popen([sys.executable, "-m", "data.sandbox", str(inbox), str(outbox),
                                     str(memory_bytes), str(status)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout_s
        last = None
        try:
            while True:
                try:
                    proc.wait(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        proc.kill()
                        proc.wait()
                        return _refused("file_too_large", f"reading it took longer than {timeout_s:.0f} s", name)
                    if progress is not None:
                        last = _report_progress(status, last, progress)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr = errors.read_bytes()
        if proc.returncode == 0 and outbox.exists():
            if progress is not None:
                progress("check", 1.0)
            return pickle.loads(outbox.read_bytes())
        if proc.returncode == 3:
            return _refused("file_too_large", f"reading it needed more than {memory_bytes / 2**30:.1f} GB of memory",
                            name)
        detail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return _refused("file_unreadable", detail[0][:300], name)


def _report_progress(status: Path, last, progress):
    """Read the child's ``phase fraction`` line and pass it on when it changed."""
    try:
        text = status.read_text().split()
        now = (text[0], float(text[1]))
    except (OSError, IndexError, ValueError):
        return last
    if now != last:
        progress(*now)
    return now


def _writer(status: str):
    """The child's side: ``progress(phase, fraction)`` writes the status file atomically."""
    target = Path(status)
    tmp = target.with_suffix(".tmp")

    def progress(phase: str, fraction: float) -> None:
        tmp.write_text(f"{phase} {min(max(float(fraction), 0.0), 1.0):.3f}")
        os.replace(tmp, target)

    return progress


def _main(inbox: str, outbox: str, memory_bytes: str, status: str | None = None) -> int:
    import fastexcel  # noqa: F401 - parsers are loaded before the limit (their import maps memory)
    import polars  # noqa: F401
    import pyarrow.compute  # noqa: F401
    import pyarrow.csv  # noqa: F401

    from data.ingest import parse_uploads

    limit = _vm_size() + int(memory_bytes)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        files = pickle.loads(Path(inbox).read_bytes())
        result = parse_uploads(files, progress=_writer(status)) if status else parse_uploads(files)
        data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        return 3
    Path(outbox).write_bytes(data)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_main(*sys.argv[1:5]))
    except MemoryError:
        os._exit(3)
