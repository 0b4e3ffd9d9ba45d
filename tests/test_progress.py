"""The job's line on the terminal (``harness.progress``)."""

import io

from harness.progress import VERBOSE_ENV, JobLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_live_line_on_a_terminal_is_replaced_by_the_verdict(monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    out = Terminal()
    line = JobLine("[1/2] relu he D=3 plain", stream=out)
    for done in range(1, 5):
        line.report(done, 4)
    line.finish("stable 10^+0.1")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\r\x1b[K[1/2] relu he D=3 plain: stable 10^+0.1\n")
    assert "\r\x1b[K[1/2] relu he D=3 plain: 3/4" in text  # each update rewrites the same line


def test_a_log_or_a_worker_gets_only_the_verdict(monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    for out, live in ((io.StringIO(), True), (Terminal(), False)):
        line = JobLine("job", live=live, stream=out)
        for done in range(1, 101):
            line.report(done, 100)
        line.finish("vanishing 10^-2.0")
        assert out.getvalue() == "job: vanishing 10^-2.0\n"


def test_verbose_adds_a_line_every_tenth_and_an_interruption_ends_the_live_line(monkeypatch):
    monkeypatch.setenv(VERBOSE_ENV, "1")
    out = io.StringIO()
    line = JobLine("job", stream=out)
    for done in range(1, 21):
        line.report(done, 20)
    assert out.getvalue().splitlines() == ["job: 1/20"] + [f"job: {2 * i}/20" for i in range(1, 11)]
    monkeypatch.delenv(VERBOSE_ENV)
    tty = Terminal()
    line = JobLine("job", stream=tty)
    line.report(1, 5)
    line.interrupt()
    assert tty.getvalue() == "\r\x1b[Kjob: 1/5\n"
