from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from tests.qualio.support import FakeClock


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
