"""The shared data fixtures: missing data skips a test with its reason, except under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, require


def test_require_skips_outside_ci_and_fails_under_ci(tmp_path, monkeypatch):
    assert require(tmp_path, "data") == tmp_path
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="data not found at /nowhere"):
        require(Path("/nowhere"), "data")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI needs data"):
        require(None, "data")


@pytest.mark.parametrize("ci, outcome", [("", "4 skipped"), ("true", "4 errors")])
def test_gmd_tests_on_a_clone_without_the_dataset(ci, outcome):
    # `make test` sets MUSICVAE_GMD_DIR to ../shared/data/groove even where that folder is missing.
    env = {**os.environ, "MUSICVAE_GMD_DIR": "/nonexistent/groove", "CI": ci}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "real_gmd", "tests/data/test_gmd.py"]
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    summary = result.stdout.strip().splitlines()[-1]
    assert outcome in summary, result.stdout[-2000:]
