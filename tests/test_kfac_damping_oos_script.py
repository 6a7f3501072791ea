"""scripts/kfac_damping_oos.py regenerates the out-of-sample damping table of docs/findings.md from its
committed results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_table_regenerates_from_the_committed_results():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "kfac_damping_oos.py")], capture_output=True,
                         text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| 0.")]
    assert len(rows) == 9 and all("(n = 9)" in row for row in rows)
    findings = (ROOT / "docs" / "findings.md").read_text()
    assert all(row in findings for row in rows), "docs/findings.md holds another table than the script prints"
