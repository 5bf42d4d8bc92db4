"""The installed package: what the wheel ships (the job, its SQL and model) and what it does not
(developer tools)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_job_and_no_developer_tool(tmp_path: Path) -> None:
    # Built from a clean copy: setuptools reuses a stale build/ folder of the checkout.
    source = tmp_path / "source"
    junk = (".*", "build", "*.egg-info", "__pycache__", "agebatch-demo")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*junk))
    build = [sys.executable, "-m", "uv", "build", "--wheel", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-o", str(tmp_path), str(source)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("agebatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [n for n in names if n.startswith("tools/") or "facebench" in n or "convert" in n]
    packages = {
        f"agebatch/{p.parent.relative_to(ROOT / 'agebatch')}/__init__.py".replace("/./", "/")
        for p in (ROOT / "agebatch").rglob("__init__.py")
    }
    assert packages <= names  # every subpackage is listed in pyproject.toml
    assert {f"agebatch/sql/{p.name}" for p in (ROOT / "sql").glob("*.sql")} <= names
    assert {f"agebatch/flows/{p.name}" for p in (ROOT / "flows").glob("*.py")} <= names
    assert {"agebatch/models/age_v1.keras", "agebatch/models/age_v1.card.json"} <= names
    templates = ROOT / "agebatch" / "reports" / "templates"
    shipped = {f"agebatch/reports/templates/{p.name}" for p in templates.iterdir()}
    assert len(shipped) >= 2 and shipped <= names  # the report's page and its style sheet
