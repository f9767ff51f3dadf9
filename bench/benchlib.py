"""Helpers shared by the benchmark scripts (progress lines, scratch folders, timing)."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def workspace(keep: bool, prefix: str = "helpdesk-bench-") -> Iterator[Path]:
    """A scratch folder under /tmp (readable by Dovecot), removed unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            progress(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def timed(label: str, fn: Callable[[], Any], fmt: Callable[[float], str]
          ) -> tuple[float, Any]:
    """Run ``fn`` with progress lines before and after; return (seconds, result)."""
    progress(f"{label} ...")
    t0 = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - t0
    progress(f"{label}: {fmt(elapsed)}")
    return elapsed, value
