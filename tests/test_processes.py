"""Signals and processes, with real processes and real signals."""

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from harness import processes
from tests import conftest


def python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], **kwargs)


# the processes here start in well under a second: poll often, give up sooner than for a sweep
wait_for = functools.partial(conftest.wait_for, timeout=20.0, poll=0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_raises_interrupted_once_and_a_second_is_ignored(tmp_path, sig):
    out = tmp_path / "out"
    child = python(
        f"""
        import os, signal, time
        from harness import processes
        processes.install()
        open({str(out)!r}, "w").write("ready")
        try:
            time.sleep(60)
        except processes.Interrupted as stop:
            os.kill(os.getpid(), {int(sig)})  # a second signal while recording: ignored
            time.sleep(0.2)
            open({str(out)!r}, "w").write(f"{{stop.signum}} {{stop.exit_code}}")
        """
    )
    wait_for(lambda: out.exists() and out.read_text() == "ready")
    child.send_signal(sig)
    assert child.wait(20) == 0
    assert out.read_text() == f"{int(sig)} {128 + int(sig)}"


@pytest.mark.parametrize("submitit", [True, False])
def test_sigusr2_stops_a_job_only_where_submitit_handles_it_and_its_handler_runs_after(tmp_path, submitit):
    """In a SLURM job submitit handles SIGUSR2 (time limit near, preemption): the harness records the stop
    first, then hands the signal on; elsewhere SIGUSR2 keeps its default action (the process ends)."""
    out = tmp_path / "out"
    child = python(
        f"""
        import os, signal, time
        from harness import processes
        if {submitit}:
            signal.signal(signal.SIGUSR2, lambda s, f: open({str(out)!r}, "a").write(f" submitit {{s}}"))
        processes.install()
        open({str(out)!r}, "w").write("ready")
        try:
            time.sleep(60)
        except processes.Interrupted as stop:
            open({str(out)!r}, "a").write(f" recorded {{stop.signum}}")
            processes.uninstall()
            processes.chained(stop)
        """
    )
    wait_for(lambda: out.exists() and out.read_text().startswith("ready"))
    child.send_signal(signal.SIGUSR2)
    code = child.wait(20)
    if submitit:
        assert (
            code == 0
            and out.read_text() == f"ready recorded {int(signal.SIGUSR2)} submitit {int(signal.SIGUSR2)}"
        )
    else:
        assert code == -signal.SIGUSR2 and out.read_text() == "ready"


def test_deferred_holds_a_signal_until_the_block_ends(tmp_path):
    out = tmp_path / "out"
    child = python(
        f"""
        import os, signal
        from harness import processes
        processes.install()
        steps = []
        try:
            with processes.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("after the signal, inside")
        except processes.Interrupted:
            steps.append("raised at the end")
        open({str(out)!r}, "w").write(",".join(steps))
        """
    )
    assert child.wait(20) == 0
    assert out.read_text() == "after the signal, inside,raised at the end"


def test_alive_tells_dead_zombie_and_reused_processes():
    me = os.getpid()
    assert processes.alive(me) and processes.alive(me, processes.start_time(me))
    assert not processes.alive(me, str(int(processes.start_time(me)) + 1))  # a PID reused later
    child = subprocess.Popen(["true"])
    wait_for(lambda: not processes.alive(child.pid))  # a zombie until reaped: not alive
    child.wait()
    assert not processes.alive(child.pid)


def test_stop_children_waits_for_handlers_and_kills_what_hangs(tmp_path):
    """One child records and exits on SIGTERM; one handles it but hangs (killed after the grace); one
    ignores it (left to its owner, like joblib's resource tracker)."""
    marker = tmp_path / "recorded"
    polite = python(
        f"""
        import signal, sys, time
        def stop(*_):
            open({str(marker)!r}, "w").write("yes")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        time.sleep(60)
        """
    )
    stubborn = python("import signal, time\nsignal.signal(signal.SIGTERM, lambda *_: None)\ntime.sleep(60)")
    ignoring = python("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)")
    try:
        wait_for(lambda: all(processes._catches(p.pid, signal.SIGTERM) for p in (polite, stubborn)))
        wait_for(lambda: processes._stat(ignoring.pid) is not None)
        time.sleep(0.3)  # the third has set SIG_IGN
        clock = time.monotonic()
        killed = processes.stop_children(signal.SIGTERM, grace=1.0)
        took = time.monotonic() - clock
        assert killed == [stubborn.pid]
        assert 1.0 <= took < 5
        assert polite.wait(5) == 0 and marker.read_text() == "yes"
        assert stubborn.wait(5) == -signal.SIGKILL
        assert ignoring.poll() is None  # not ours to stop
    finally:
        for p in (polite, stubborn, ignoring):
            p.kill()
            p.wait()


def test_a_worker_stops_itself_when_its_launcher_is_killed(tmp_path):
    """launcher -> worker; kill -9 the launcher; the worker's watchdog sends it SIGTERM, its handler
    records, and it exits within a few seconds."""
    record, pid_file = tmp_path / "record", tmp_path / "worker.pid"
    worker_code = textwrap.dedent(
        f"""
        import os, time
        from harness import processes
        processes.install()
        processes.watch_parent(interval=0.2)
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        try:
            time.sleep(60)
        except processes.Interrupted as stop:
            open({str(record)!r}, "w").write(str(stop.signum))
        """
    )
    spawn = f"subprocess.Popen([sys.executable, '-c', {worker_code!r}])"
    launcher = python(f"import subprocess, sys, time\n{spawn}\ntime.sleep(60)")
    wait_for(lambda: pid_file.exists() and pid_file.read_text())
    worker = int(pid_file.read_text())
    assert processes.descendants(launcher.pid) == [worker]
    launcher.kill()
    launcher.wait()
    wait_for(lambda: record.exists(), timeout=5)
    assert record.read_text() == str(int(signal.SIGTERM))
    wait_for(lambda: not processes.alive(worker), timeout=5)
