"""``benchmarks.chaos`` at a small size: real server, flow and Redis, a flow SIGKILL and a Redis restart under load,
retried batches and poison; nothing lost, nothing double-counted, every poison entry dead-lettered."""

from __future__ import annotations

import pytest

from benchmarks.chaos import main


@pytest.mark.slow
def test_chaos_loses_and_double_counts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--events", "3000", "--users", "100", "--rate", "300", "--flow-kills", "1", "--redis-restarts", "1"])
    table = dict(line.rsplit(None, 1) for line in capsys.readouterr().out.splitlines()[2:])
    assert status == 0, table
    assert table["accepted"] == "3,000" and table["counted in state"] == "3,000"
    assert table["lost"] == "0" and table["double-counted"] == "0" and table["manual restarts"] == "0"
    assert int(table["posts retried"].replace(",", "")) > 0  # the duplicates and the outage were really there
    assert table["dead-lettered"] == table["poison sent"]
