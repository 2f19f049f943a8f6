"""The console's templates and CSS ship in the wheel: a non-editable install serves its pages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CONSOLE = ROOT / "connector" / "ops" / "console"
pytestmark = pytest.mark.slow

SERVE = """
import sys
import connector.ops.console as console
assert console.__file__.startswith(sys.argv[1]), console.__file__  # the wheel's copy, not the work tree's
from connector.ops.app import create_app
from connector.settings import load_settings
settings = load_settings({"NC_CONNECTOR_DATABASE_URL": "sqlite:///" + sys.argv[1] + "/x.db",
                          "NC_CONNECTOR_CONSOLE_TOKEN": "a-console-token-of-the-wheel"})
client = create_app(settings).test_client()
login = client.get("/console/login")
css = client.get("/console/static/console.css")
print(login.status_code, css.status_code, "Console token" in login.get_data(as_text=True), len(css.data))
"""


def test_the_wheel_carries_and_serves_the_console(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, timeout=300)
    (wheel,) = tmp_path.glob("nc_connector-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    data_files = [p for p in CONSOLE.rglob("*") if p.suffix in (".html", ".css")]
    assert len(data_files) >= 8
    assert {str(p.relative_to(ROOT)) for p in data_files} <= shipped
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # Dependencies come from this environment; `connector` only from the unpacked wheel (run outside the tree).
    answer = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); "
                             f"sys.path.extend({sys.path[1:]!r}); exec({SERVE!r})", str(site)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert answer.returncode == 0, answer.stderr
    login, css, has_form, size = answer.stdout.split()
    assert (login, css, has_form) == ("200", "200", "True") and int(size) > 1000


def test_the_readme_shows_each_page_and_the_pictures_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pictures = {"overview", "deliveries", "nc", "dead-letters", "replay-confirm", "mapping", "login"}
    for name in pictures:
        assert f"(docs/console/{name}.png)" in readme, name
        assert (ROOT / "docs" / "console" / f"{name}.png").stat().st_size > 5_000, name
