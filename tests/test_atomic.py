"""Atomic writes: a failed or interrupted write leaves neither the target nor a temporary file."""

from __future__ import annotations

import signal
import tempfile
import threading

import pytest

from argen.io import atomic
from argen.io.atomic import atomic_path, write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="signals cannot be held back here")
def test_ctrl_c_just_after_the_temporary_file_is_made_leaves_nothing(tmp_path, monkeypatch):
    real = tempfile.mkstemp

    def interrupted(*args, **kwargs):
        made = real(*args, **kwargs)  # the file exists, its name not yet returned
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        return made

    monkeypatch.setattr(atomic.tempfile, "mkstemp", interrupted)
    # a shell starts background jobs with Ctrl-C ignored, and Python then installs no handler for it
    old_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        signal.signal(signal.SIGINT, old_handler)
    assert list(tmp_path.iterdir()) == []
