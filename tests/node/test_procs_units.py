"""The one /proc/PID/stat reader, on real processes: a name holding ') (' and spaces, a zombie."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

from netbind.node import procs

ODD_NAME = "nb) (x y) z"   # what a naive split at the first ')' or at spaces gets wrong


def test_proc_stat_reads_a_name_with_parens_and_spaces(tmp_path):
    binary = tmp_path / ODD_NAME
    shutil.copy("/bin/sleep", binary)   # comm is the executable's file name
    child = subprocess.Popen([str(binary), "30"])
    try:
        stat = procs.proc_stat(child.pid)
        assert stat is not None
        assert (stat.name, stat.ppid, stat.running) == (ODD_NAME, os.getpid(), True)
        assert stat.state in ("R", "S")
        mine = procs.proc_stat(os.getpid())
        assert mine.starttime <= stat.starttime   # the child started after us
        assert procs.starttime_of(child.pid) == stat.starttime
        assert procs.alive(child.pid, stat.starttime)
        assert not procs.alive(child.pid, stat.starttime + 1)   # a reused pid is not ours
    finally:
        child.kill()
        child.wait()
    assert procs.proc_stat(child.pid) is None


def test_a_zombie_is_not_running_and_starttime_of_reaps_it():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    deadline = time.monotonic() + 10
    while (stat := procs.proc_stat(pid)) is not None and stat.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stat is not None and stat.state == "Z" and not stat.running
    assert procs.starttime_of(pid) is None
    assert procs.proc_stat(pid) is None   # reaped: the pid is free
