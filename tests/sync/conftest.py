"""Fixtures of the sync tests: an in-memory Jira and a worker on the test database with the default mapping."""

from __future__ import annotations

import pytest

from connector.mapping.load import default_mapping_path, load_mapping
from connector.sync.apply import Syncer
from connector.sync.worker import Worker
from tests.conftest import make_settings
from tests.fake_jira import FakeJira


@pytest.fixture
def jira():
    return FakeJira()


@pytest.fixture
def worker(engine, db_url, jira):
    settings = make_settings(db_url, NC_CONNECTOR_MAX_ATTEMPTS="3", NC_CONNECTOR_RETRY_BASE="0.01s",
                             NC_CONNECTOR_JIRA_SEARCH_LAG="60s")
    mapping = load_mapping(default_mapping_path(), project_override="QA")
    return Worker(engine, settings, Syncer(engine, jira, mapping, settings.jira_search_lag))
