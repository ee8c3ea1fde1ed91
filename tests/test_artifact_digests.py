"""Refactors keep artifacts byte-identical: every example model under every preset's pipeline, two
budgeted presets (and pipelines
for the other formats) hashes to the digest recorded in tests/data/artifact_digests.json.

A change that means to alter artifacts re-records them (``python scripts/artifact_digests.py
--write``) and says so in its commit message.
"""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_example_artifacts_are_byte_identical_to_the_record() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "artifact_digests.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "119/119 artifacts byte-identical" in res.stdout
