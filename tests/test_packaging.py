"""The wheel installs into a fresh virtual environment and its command works."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from connector import __version__

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.slow


def test_wheel_installs_and_runs(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                   check=True, timeout=300)
    (wheel,) = dist.glob("nc_connector-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The wheel alone is what is tested (entry point, packaged mappings and manifest): its dependencies
    # come from this run's environment through a .pth file (added after the venv's own site-packages,
    # so `connector` is the wheel's). The fresh-machine install with dependencies is the README's command.
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    (Path(site_packages) / "run-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=600)
    command = env_dir / "bin" / "nc-connector"
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert version.stdout.strip() == f"nc-connector, version {__version__}"
    manifest = subprocess.run([str(command), "manifest"], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(manifest.stdout)["version"] == __version__
    # the packaged default mapping is found outside the repository
    check = subprocess.run([str(command), "mappings", "check"], capture_output=True, text=True, cwd=tmp_path,
                           env={"PATH": "/usr/bin:/bin", "NC_CONNECTOR_JIRA_PROJECT": "QA"})
    assert check.returncode == 0 and "_mappings/default.toml: valid" in check.stdout, check.stderr
