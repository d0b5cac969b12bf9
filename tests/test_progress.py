"""The one progress display: a redrawn line on a terminal, quiet or plain lines elsewhere, notes kept whole."""

from __future__ import annotations

import io
from pathlib import Path

import redis

from flows.progress import Progress
from flows.replay import replay
from online.contract import Settings

CLEAR = "\r\x1b[K"


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_off_a_terminal_it_is_silent_by_default_but_notes_are_written() -> None:
    out = io.StringIO()
    progress = Progress(100, "eval", stream=out, every_s=0.0)
    for _ in progress.track(range(100)):
        pass
    progress.note("a line of its own")
    progress.close()
    assert progress.done == 100
    assert out.getvalue() == "a line of its own\n"


def test_off_a_terminal_with_log_every_s_it_writes_plain_lines() -> None:
    out = io.StringIO()
    progress = Progress(4, "x", stream=out, log_every_s=0.0)
    progress.advance(2)
    progress.advance(2)
    progress.close()
    lines = out.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["x: 2/4 events (50%)", "x: 4/4 events (100%)",
                                                      "x: 4/4 events (100%)"]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_on_a_terminal_it_redraws_one_line_and_a_note_clears_it_first() -> None:
    out = Terminal()
    progress = Progress(10, "eval", stream=out, every_s=0.0)
    assert progress.interactive
    progress.advance(5)
    progress.note("note")
    progress.advance(5)
    progress.close()
    text = out.getvalue()
    assert text.startswith(CLEAR + "eval: 5/10 events (50%), ")
    assert CLEAR + "note\n" + CLEAR + "eval: 10/10 events (100%), " in text
    assert text.endswith(" events/s\n") and text.count("\n") == 2


def test_a_terminal_is_redrawn_at_most_every_every_s_but_the_end_always_shows() -> None:
    out = Terminal()
    progress = Progress(1000, "eval", stream=out, every_s=3600.0)
    for _ in range(999):
        progress.advance()
    assert out.getvalue() == ""
    progress.advance()
    assert "1,000/1,000 events (100%)" in out.getvalue()


def test_disabled_shows_nothing_even_on_a_terminal() -> None:
    out = Terminal()
    progress = Progress(10, "x", stream=out, every_s=0.0, enabled=False)
    progress.advance(10)
    progress.close()
    assert out.getvalue() == ""
    assert not progress.visible


def test_without_a_total_the_fraction_given_is_shown() -> None:
    progress = Progress(None, "replay", unit="events written", stream=io.StringIO())
    progress.update(1234, fraction=0.426)
    assert progress.text().startswith("replay: 1,234 events written (43%), ")
    progress.update(1300, fraction=1.7)
    assert "(100%)" in progress.text()
    assert Progress(None, "r", stream=io.StringIO()).text().startswith("r: 0 events, ")


def test_replay_on_a_terminal_keeps_rejections_on_lines_of_their_own(
    tmp_path: Path, settings: Settings, redis_client: redis.Redis
) -> None:
    log = tmp_path / "mixed.csv"
    log.write_text("user_id,item_id,type,ts\nu1,i1,view,1700000000\nu2,,view,1700000000\nu3,i3,view,1700000001\n")
    err = Terminal()
    report = replay(log, settings, redis_client, err=err, progress=True)
    assert (report.written, report.rejected) == (2, 1)
    text = err.getvalue()
    assert f"{log}:3: rejected: item_id: must not be empty\n" in text
    assert text.rstrip("\n").endswith(" events/s")
    assert (CLEAR + "replay: 2 events written (100%), ") in text


def test_replay_in_a_log_writes_a_final_plain_line_and_no_progress_writes_none(
    tmp_path: Path, settings: Settings, redis_client: redis.Redis
) -> None:
    log = tmp_path / "ok.csv"
    log.write_text("user_id,item_id,type,ts\nu1,i1,view,1700000000\nu2,i2,view,1700000000\n")
    err = io.StringIO()
    replay(log, settings, redis_client, err=err, progress=True)
    assert err.getvalue().startswith("replay: 2 events written (100%), ")
    assert err.getvalue().count("\n") == 1 and "\r" not in err.getvalue()
    quiet = io.StringIO()
    replay(log, settings, redis_client, err=quiet, progress=False)
    assert quiet.getvalue() == ""
