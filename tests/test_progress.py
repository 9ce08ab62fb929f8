"""Progress bars: drawn on a terminal only, and never after ``--no-progress``."""

import io

import pytest

from condflow import _progress
from condflow._progress import progress, progress_enabled, set_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _default_switch():
    set_progress(True)  # the process-wide default (a CLI command sets it for its run)
    yield
    set_progress(True)


def test_bars_are_drawn_on_a_terminal_and_not_into_pipes_or_files(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(_progress.sys, "stderr", terminal)
    assert progress_enabled()
    assert list(progress(range(3), desc="work")) == [0, 1, 2]
    assert "work" in terminal.getvalue() and "3/3" in terminal.getvalue()
    pipe = io.StringIO()  # isatty() is False, as for a pipe, a file or CI logs
    monkeypatch.setattr(_progress.sys, "stderr", pipe)
    assert not progress_enabled()
    assert list(progress(range(3), desc="work")) == [0, 1, 2]
    assert pipe.getvalue() == ""


def test_no_progress_turns_bars_off_even_on_a_terminal(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(_progress.sys, "stderr", terminal)
    set_progress(False)
    bar = progress(total=5, desc="fit")
    assert bar.disable
    bar.update(5)
    bar.close()
    assert terminal.getvalue() == ""
    assert progress_enabled(True)  # an explicit request still wins over the switch


@pytest.mark.parametrize("command", ["train", "eval", "predict", "fit", "demo"])
def test_every_long_command_takes_no_progress(command):
    from condflow.cli import build_parser

    parser = build_parser()
    args = {"train": ["cfg.yaml"], "eval": ["cfg.yaml", "ckpt.pt"], "predict": ["m.pt", "x"],
            "fit": ["m.pt", "kp.json"], "demo": []}[command]
    assert parser.parse_args([command, *args, "--no-progress"]).no_progress
