"""Progress on stderr: a bar on a terminal, a few plain lines in a log (issue 20.11)."""
from __future__ import annotations

import io
import sys

from fusplan.progress import LineProgress, is_terminal, within


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_line_progress_writes_a_few_whole_lines():
    stream = io.StringIO()
    lines = LineProgress("plan", stream)
    for k in range(1001):
        lines(k / 1000, f"step {k}")
    text = stream.getvalue()
    assert "\r" not in text
    assert text.splitlines() == ["plan:   0% step 0", "plan:  20% step 200", "plan:  40% step 400",
                                 "plan:  60% step 600", "plan:  80% step 800", "plan: 100% step 1000"]


def test_line_progress_counts_items():
    stream = io.StringIO()
    bar = LineProgress("simulate", stream, total=7, unit="runs")
    for _ in range(7):
        bar.update(1)
    assert stream.getvalue().splitlines()[-1] == "simulate: 100% 7/7 runs" and len(stream.getvalue().splitlines()) <= 6


def test_command_progress_is_plain_lines_without_a_terminal(monkeypatch):
    """What `fusplan plan ... 2> log` writes: the bar used to redraw hundreds of times with carriage returns."""
    from fusplan.cli.common import progress_bar

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert not is_terminal(log) and is_terminal(_Terminal())
    update, close = progress_bar("plan")
    scaled = within(update, 0.5, 1.0)
    for k in range(500):
        update(k / 1000, "registering")
    for k in range(501):
        scaled(k / 500, "bioheat")
    close()
    text = log.getvalue()
    assert "\r" not in text and 3 <= len(text.splitlines()) <= 7 and text.endswith("plan: 100% bioheat\n")


def test_batch_progress_is_plain_lines_without_a_terminal(monkeypatch):
    from fusplan.batch.driver import _Progress

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    meter = _Progress(True, 2, 40)
    meter.registered(2)
    for _ in range(40):
        meter.simulated(1)
    meter.close()
    text = log.getvalue()
    assert "\r" not in text and "register: 100% 2/2 scans" in text and "simulate: 100% 40/40 runs" in text
    assert len(text.splitlines()) <= 10
