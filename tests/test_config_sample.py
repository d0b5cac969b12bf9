"""The sample configuration lists every variable with its real default, and typos in LIVERECO_* are reported."""

from __future__ import annotations

import subprocess
import sys

from online.contract.settings import SETTINGS_DOC, sample_env
from tests.processes import ROOT


def test_the_sample_configuration_is_in_step_with_the_code() -> None:
    sample = (ROOT / "livereco.env.example").read_text()
    assert sample == sample_env(), "livereco.env.example is stale: regenerate it with online.contract.settings.sample_env"
    for env, default, _ in SETTINGS_DOC:
        assert f"#{env}={'' if default == '(empty)' else default}\n" in sample


def test_a_misspelt_variable_is_reported_at_start_up_by_name() -> None:
    env = {"PATH": "/usr/bin:/bin", "LIVERECO_PARTITION": "8", "LIVERECO_NAMESPACE": "typo-test"}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "flow", "--help"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "LIVERECO_PARTITION is not a livereco setting and is ignored (did you mean LIVERECO_PARTITIONS?)" in done.stderr
