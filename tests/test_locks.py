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
    import sys, time
    from pathlib import Path
    from actionbook.io import build_lock
    lock, out, log, go = map(Path, sys.argv[1:5])
    while not go.exists():            # both processes start before either builds
        time.sleep(0.01)
    with build_lock(lock, what="the test's thing"):
        if not out.exists():          # the check a builder makes again once it holds the lock
            with open(log, "a") as f:
                f.write("built\\n")
            time.sleep(0.5)           # long enough for the other process to ask meanwhile
            out.write_text("done")
""")


def test_two_processes_that_want_the_same_thing_build_it_once(tmp_path):
    lock, out, log, go = (tmp_path / n for n in ("x.lock", "x.out", "log.txt", "go"))
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, lock, out, log, go], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    go.touch()
    errs = [p.communicate()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    assert log.read_text() == "built\n" and out.read_text() == "done"
    assert sum("waiting: another process is building the test's thing" in e for e in errs) == 1


def _hold(lock, ready):
    with build_lock(lock, what="x"):
        ready.set()
        signal.pause()  # until killed


def test_a_killed_builder_does_not_leave_the_lock_held(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(tmp_path / "x.lock", ready))
    holder.start()
    assert ready.wait(60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    with build_lock(tmp_path / "x.lock", what="x"):  # would wait forever if the lock outlived its holder
        pass
