"""Parse uploads in a child process with a time and memory bound.

The guards in :mod:`data.guards` refuse known attacks before parsing, but a parser can still
meet something new. The app therefore reads uploads in a child process (``python -m
data.sandbox``) that sets ``RLIMIT_AS`` to its size after start-up plus ``memory_bytes``, and is
killed after ``timeout_s``. When either bound is hit, the child dies alone and the user gets a
clear message; the server and the other sessions carry on. Starting the child costs about half
a second (importing pandas), small next to reading a real extract.
"""

from __future__ import annotations

import os
import pickle
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from data.report import ExtractError

__all__ = ["parse_isolated", "TIMEOUT_S", "MEMORY_BYTES"]

TIMEOUT_S = 120.0            # seconds for reading and validating one upload
MEMORY_BYTES = 3 * 2**30     # bytes of address space a parse may add to the child
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
                   memory_bytes: int = MEMORY_BYTES):
    """:func:`data.ingest.parse_uploads` in a bounded child process.

    Parameters
    ----------
    files : list of (str, bytes)
        File names and contents as uploaded.
    timeout_s : float
        Seconds before the child is killed.
    memory_bytes : int
        Bytes of address space the child may add beyond its size after start-up.

    Returns
    -------
    tuple of (Extract or None, Report)
        As :func:`data.ingest.parse_uploads`; when a bound is hit, ``None`` and a report
        saying which.
    """
    name = ", ".join(n for n, _ in files)
    with tempfile.TemporaryDirectory(prefix="jixiao-upload-") as tmp:
        inbox, outbox = Path(tmp) / "in.pickle", Path(tmp) / "out.pickle"
        inbox.write_bytes(pickle.dumps(files, protocol=pickle.HIGHEST_PROTOCOL))
        try:
            proc = subprocess.run([sys.executable, "-m", "data.sandbox", str(inbox), str(outbox), str(memory_bytes)],
                                  cwd=ROOT, capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return _refused("file_too_large", f"reading it took longer than {timeout_s:.0f} s", name)
        if proc.returncode == 0 and outbox.exists():
            return pickle.loads(outbox.read_bytes())
        if proc.returncode == 3:
            return _refused("file_too_large", f"reading it needed more than {memory_bytes / 2**30:.1f} GB of memory",
                            name)
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return _refused("file_unreadable", detail[0][:300], name)


def _main(inbox: str, outbox: str, memory_bytes: str) -> int:
    import python_calamine  # noqa: F401 - loaded before the limit, like every parser module

    from data.ingest import parse_uploads

    limit = _vm_size() + int(memory_bytes)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        result = parse_uploads(pickle.loads(Path(inbox).read_bytes()))
        data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        return 3
    Path(outbox).write_bytes(data)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_main(*sys.argv[1:4]))
    except MemoryError:
        os._exit(3)
