from __future__ import annotations

from typing import Any

import pytest

from tests.ops.console.support import console_client


@pytest.fixture
def console(db_url: str, engine: Any) -> Any:
    """A test client of an app whose console is on (the token of support.TOKEN), on SQLite and PostgreSQL."""
    return console_client(db_url, engine)
