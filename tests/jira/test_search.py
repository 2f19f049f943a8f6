"""The gateway's label search, Cloud (search/jql) and Server/Data Center (search)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import responses

from tests.jira.jira_http import (
    API,
    BEARER,
    CLOUD,
    JQL,
    LABEL,
    SERVER,
    calls_of,
    check_request,
    cloud_gateway,
    fixture,
    mock_server_info,
    server_gateway,
)

# -- search ----------------------------------------------------------------------------------------


def test_find_issues_by_label_on_cloud_uses_search_jql(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps)
    page1 = fixture("search_jql_page1")
    rsps.get(f"{CLOUD}{API}search/jql", json=page1)
    rsps.get(f"{CLOUD}{API}search/jql", json=fixture("search_jql_page2"))
    gateway = cloud_gateway()

    assert gateway.find_issues_by_label(LABEL, "NC") == ["NC-24", "NC-31"]

    info, first, second = rsps.calls
    check_request(info, "GET", f"{API}serverInfo")
    query = {"jql": [JQL], "fields": ["key"], "maxResults": ["100"]}
    check_request(first, "GET", f"{API}search/jql", query=query)
    check_request(second, "GET", f"{API}search/jql", query={**query, "nextPageToken": [page1["nextPageToken"]]})
    assert calls_of(rsps, "/search") == []  # never the endpoint Cloud is removing


def test_find_issues_by_label_on_server_uses_search(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps, SERVER, "server")
    rsps.get(f"{SERVER}{API}search", json=fixture("search_server"))

    assert server_gateway().find_issues_by_label(LABEL, "NC") == ["NC-24", "NC-31"]

    info, search = rsps.calls
    check_request(info, "GET", f"{API}serverInfo", auth=BEARER)
    check_request(search, "GET", f"{API}search", auth=BEARER,
                  query={"jql": [JQL], "fields": ["key"], "startAt": ["0"], "maxResults": ["100"]})


def two_server_pages(rsps: responses.RequestsMock) -> None:
    """A Data Center search answering one issue per page, two pages."""
    mock_server_info(rsps, SERVER, "server")
    page = fixture("search_server")
    rsps.get(f"{SERVER}{API}search", json={**page, "maxResults": 1, "issues": page["issues"][:1]})
    rsps.get(f"{SERVER}{API}search", json={**page, "startAt": 1, "maxResults": 1, "issues": page["issues"][1:]})


def test_server_search_pages_by_start_at(rsps: responses.RequestsMock) -> None:
    two_server_pages(rsps)
    assert server_gateway().find_issues_by_label(LABEL, "NC") == ["NC-24", "NC-31"]
    starts = [parse_qs(urlsplit(str(c.request.url)).query)["startAt"] for c in calls_of(rsps, "/search")]
    assert starts == [["0"], ["1"]]


def test_search_quotes_jql_strings(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps)
    rsps.get(f"{CLOUD}{API}search/jql", json={"issues": [], "isLast": True})
    assert cloud_gateway().find_issues_by_label('odd"label\\', "NC") == []
    jql = parse_qs(urlsplit(str(rsps.calls[1].request.url)).query)["jql"]
    assert jql == ['project = "NC" AND labels = "odd\\"label\\\\" ORDER BY created ASC']


# -- every project -----------------------------------------------------------------------------------

EVERY_PROJECT_JQL = f'labels = "{LABEL}" ORDER BY created ASC'


def test_find_issues_by_label_in_every_project_on_cloud(rsps: responses.RequestsMock) -> None:
    """Without a project the search finds an issue a person moved to another project; paging as ever."""
    mock_server_info(rsps)
    page1 = fixture("search_jql_page1")
    rsps.get(f"{CLOUD}{API}search/jql", json=page1)
    rsps.get(f"{CLOUD}{API}search/jql", json=fixture("search_jql_page2"))

    assert cloud_gateway().find_issues_by_label(LABEL, None) == ["NC-24", "NC-31"]

    _, first, second = rsps.calls
    query = {"jql": [EVERY_PROJECT_JQL], "fields": ["key"], "maxResults": ["100"]}
    check_request(first, "GET", f"{API}search/jql", query=query)
    check_request(second, "GET", f"{API}search/jql", query={**query, "nextPageToken": [page1["nextPageToken"]]})


def test_find_issues_by_label_in_every_project_on_server(rsps: responses.RequestsMock) -> None:
    two_server_pages(rsps)

    assert server_gateway().find_issues_by_label(LABEL, None) == ["NC-24", "NC-31"]

    _, one, two = rsps.calls
    query = {"jql": [EVERY_PROJECT_JQL], "fields": ["key"], "maxResults": ["100"]}
    check_request(one, "GET", f"{API}search", auth=BEARER, query={**query, "startAt": ["0"]})
    check_request(two, "GET", f"{API}search", auth=BEARER, query={**query, "startAt": ["1"]})
