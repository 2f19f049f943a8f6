"""Fixtures for the mapping tests: the two shipped mappings, loaded once per module."""

from __future__ import annotations

import pytest

from connector.mapping.load import load_mapping
from connector.mapping.rules import Mapping
from tests.mapping.helpers import DEFAULT, RICH


@pytest.fixture(scope="module")
def default() -> Mapping:
    return load_mapping(DEFAULT, project_override="QA")


@pytest.fixture(scope="module")
def rich() -> Mapping:
    return load_mapping(RICH)
