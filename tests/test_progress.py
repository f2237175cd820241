"""pyengine.utils.progress: the live line and duration format shared by keras' Progbar and `pyengine train`."""
import io

import pytest

from pyengine import lm
from pyengine.keras import progbar
from pyengine.utils.progress import LiveLine, format_duration, is_terminal


class _Terminal(io.StringIO):
    def isatty(self):
        return True


class _Closed:
    def isatty(self):
        raise ValueError("I/O operation on closed file")


@pytest.mark.parametrize("seconds,text", [(0, "0s"), (41.6, "42s"), (59.4, "59s"), (60, "1:00"), (185, "3:05"),
                                          (3599, "59:59"), (3600, "1:00:00"), (3723, "1:02:03")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_is_terminal():
    assert is_terminal(_Terminal()) and not is_terminal(io.StringIO())
    assert not is_terminal(object()) and not is_terminal(_Closed())
    assert progbar.is_terminal is is_terminal  # one implementation, re-exported by keras


def test_live_line_redraws_pads_and_ends():
    out = _Terminal()
    line = LiveLine(out)
    assert line.is_terminal
    line.show("long text")
    line.show("short")  # what the longer text left is blanked with spaces
    line.print("message")  # blanks the live line, then a whole line
    line.show("again")
    line.show("done", end=True)
    line.print("after")  # nothing live: just the line
    assert out.getvalue() == ("\rlong text" + "\rshort    " + "\r     \rmessage\n" + "\ragain" + "\rdone \n"
                              + "after\n")


def test_lm_progress_uses_the_live_line():
    term = _Terminal()
    prog = lm.Progress(10, log_interval=5, stream=term)
    prog.update(0, 2.5, 1000.0, 1e-3)
    prog.message("eval")
    text = term.getvalue()
    assert text.startswith("\rstep 1/10  loss 2.5000  lr 1.00e-03  1,000 tok/s  ETA ") and text.endswith("\reval\n")
    plain = io.StringIO()
    prog = lm.Progress(10, log_interval=5, stream=plain)
    for step in range(10):
        prog.update(step, 1.0, 0.0, 1e-3)
    lines = plain.getvalue().splitlines()
    assert [ln.split()[1] for ln in lines] == ["5/10", "10/10"] and "\r" not in plain.getvalue()
