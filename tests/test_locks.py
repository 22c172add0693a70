"""`actionbook.io.build_lock`: what two processes want at the same time is built once, and a
builder that dies never leaves the lock held."""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap

from actionbook.io import build_lock

BUILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from actionbook.io import build_lock
    lock, out, log, folder = map(Path, sys.argv[1:5])
    (folder / f"asking-{os.getpid()}").touch()
    with build_lock(lock, what="the test's thing"):
        if not out.exists():          # the check a builder makes again once it holds the lock
            with open(log, "a") as f:
                f.write("built\\n")
            for _ in range(3000):     # until both processes have asked (bounded: 300 s on a busy machine)
                if len(list(folder.glob("asking-*"))) == 2:
                    break
                time.sleep(0.1)
            out.write_text("done")
""")


def test_two_processes_that_want_the_same_thing_build_it_once(tmp_path):
    """The builder holds on until the other process has asked too, so that without the lock both
    would build."""
    lock, out, log = (tmp_path / n for n in ("x.lock", "x.out", "log.txt"))
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, lock, out, log, tmp_path], stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    errs = [p.communicate()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    assert log.read_text() == "built\n" and out.read_text() == "done"
    assert sum("waiting: another process is building the test's thing" in e for e in errs) <= 1


def _hold(lock, ready):
    with build_lock(lock, what="x"):
        ready.set()
        signal.pause()  # until killed


def test_a_killed_builder_does_not_leave_the_lock_held(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(tmp_path / "x.lock", ready))
    holder.start()
    assert ready.wait(600)  # bounded, for a busy machine
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    with build_lock(tmp_path / "x.lock", what="x"):  # would wait forever if the lock outlived its holder
        pass
