"""QualioEnricher: what a sync gets back from Qualio (a record, {} or a sync signal), on mocked HTTP."""

from __future__ import annotations

import logging
import re

import pytest
import responses

from connector.qualio.client import is_event_code
from connector.qualio.enrich import QualioEnricher
from connector.sync.errors import InstallationFault, Permanent, RetryLater
from tests.qualio.support import EVENT_PATH, KEY, FakeClock, answer, assert_requests, fixture, make_client, spec

LOGGER = "connector.qualio.enrich"


def enricher(clock: FakeClock, **options: object) -> QualioEnricher:
    return QualioEnricher(make_client(clock), **options)  # type: ignore[arg-type]


def retry(qualio: QualioEnricher, nc_id: str, attempt: int = 1) -> RetryLater:
    with pytest.raises(RetryLater) as caught:
        qualio.fetch(nc_id, attempt)
    return caught.value


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


# -- which ids can be Qualio event codes -------------------------------------------------------------


def spec_event_codes() -> set[str]:
    """Every event code the spec shows: the eventCode example, the operation's "(e.g. ...)", eventDetailed's."""
    schemas = spec().spec["components"]["schemas"]
    example = schemas["eventDetailed"]["example"]
    codes = {schemas["eventCode"]["example"], example["code"], *example["escalated_from"], *example["escalated_to"]}
    description = spec().operation(EVENT_PATH, "get")["description"]
    codes |= set(re.findall(r"\b[A-Z]+-\d+\b", description.split("(e.g.")[1].split(")")[0]))
    return codes


def test_every_event_code_of_the_spec_is_one() -> None:
    codes = spec_event_codes()
    assert codes >= {"CAPA-1", "NCR-12", "NCR-21", "COM-1"}
    assert all(is_event_code(code) for code in codes)
    assert is_event_code("CAPA-4") and is_event_code("ncr-12")


@pytest.mark.parametrize("nc_id", ["NC-2025-001", "NC-2025-002", "", "NCR-", "-12", "12", "NCR12", "NCR-12a",
                                   "NCR-12/../x", "NCR 12", "NCR-12\n", "NCR-١٢", "NÇR-12"])
def test_ids_that_cannot_be_event_codes(nc_id: str) -> None:
    assert not is_event_code(nc_id)


def test_an_id_that_is_not_a_qualio_code_is_synced_from_the_payload_without_a_request(
        rsps: responses.RequestsMock, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    qualio = enricher(clock)
    for attempt in (1, 1, 2):  # three syncs of the NC
        assert qualio.fetch("NC-2025-001", attempt) == {}
    assert qualio.fetch("NC-2025-002") == {}
    assert_requests(rsps, [])
    infos = logged(caplog, logging.INFO)
    assert [r.nc_id for r in infos] == ["NC-2025-001", "NC-2025-002"]  # once per id, not per sync
    assert "NC-2025-001 cannot be a Qualio event code" in infos[0].getMessage()
    assert logged(caplog, logging.WARNING) == []


def test_a_code_qualio_calls_malformed_is_synced_from_the_payload(
        rsps: responses.RequestsMock, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    answer(rsps, "ABC-0", 400, fixture("error_400"))
    qualio = enricher(clock)
    assert qualio.fetch("ABC-0") == {}
    assert qualio.fetch("ABC-0") == {}
    assert_requests(rsps, ["ABC-0", "ABC-0"])
    (info,) = logged(caplog, logging.INFO)
    assert info.nc_id == "ABC-0" and "code is not a valid event code" in info.getMessage()


# -- 404 -------------------------------------------------------------------------------------------


def test_404_is_retried_then_the_nc_is_synced_from_the_payload(
        rsps: responses.RequestsMock, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    answer(rsps, "NCR-77", 404, fixture("error_404"))
    qualio = enricher(clock)

    first = retry(qualio, "NCR-77", attempt=1)
    assert (first.delay, first.count_attempt) == (5.0, True)  # a new event may not be visible yet
    second = retry(qualio, "NCR-77", attempt=2)
    assert (second.delay, second.count_attempt) == (15.0, True)
    assert "NCR-77" in str(second) and logged(caplog, logging.WARNING) == []

    assert qualio.fetch("NCR-77", attempt=3) == {}
    (warning,) = logged(caplog, logging.WARNING)
    assert warning.nc_id == "NCR-77"
    assert warning.getMessage() == "Qualio has no event NCR-77 (404): synced from the webhook payload alone"
    assert_requests(rsps, ["NCR-77"] * 3)
    assert clock.slept == []


def test_a_later_sync_of_an_nc_qualio_does_not_have_is_not_delayed_again(
        rsps: responses.RequestsMock, clock: FakeClock) -> None:
    for _ in range(3):
        answer(rsps, "NCR-77", 404, fixture("error_404"))
    answer(rsps, "NCR-77", 200, {**fixture("event_ncr_12"), "code": "NCR-77"})
    answer(rsps, "NCR-77", 404, fixture("error_404"))
    qualio = enricher(clock, not_found_attempts=2)
    retry(qualio, "NCR-77", attempt=1)
    assert qualio.fetch("NCR-77", attempt=2) == {}
    assert qualio.fetch("NCR-77", attempt=1) == {}  # a new delivery: still asked, but no retry this time
    assert qualio.fetch("NCR-77", attempt=1)["ncId"] == "NCR-77"  # it showed up after all
    assert retry(qualio, "NCR-77", attempt=1).delay == 5.0  # and is waited for again if it goes missing
    assert_requests(rsps, ["NCR-77"] * 5)


def test_404_delays_and_attempts_are_options(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    answer(rsps, "NCR-77", 404, fixture("error_404"))
    qualio = enricher(clock, not_found_attempts=4, not_found_delays=(1.0, 2.0))
    assert [retry(qualio, "NCR-77", n).delay for n in (1, 2, 3)] == [1.0, 2.0, 2.0]  # the last delay repeats
    assert qualio.fetch("NCR-77", 4) == {}
    assert enricher(clock, not_found_attempts=1).fetch("NCR-77") == {}  # no waiting at all


def test_without_an_attempt_number_a_404_is_retried(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    """Callers that do not pass the attempt (the default is 1) keep retrying: the worker's budget decides."""
    answer(rsps, "NCR-77", 404, fixture("error_404"))
    qualio = enricher(clock)
    for _ in range(3):
        with pytest.raises(RetryLater) as caught:
            qualio.fetch("NCR-77")
        assert caught.value.count_attempt


@pytest.mark.parametrize("options", [{"not_found_attempts": 0}, {"not_found_delays": ()},
                                     {"not_found_delays": (5.0, -1.0)}])
def test_bad_options_are_refused(clock: FakeClock, options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        enricher(clock, **options)


# -- the key refused: the installation's fault -----------------------------------------------------


def test_403_is_an_installation_fault_not_an_attempt(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    answer(rsps, "NCR-12", 403, fixture("error_403"))
    with pytest.raises(InstallationFault) as caught:
        enricher(clock).fetch("NCR-12", attempt=1)
    assert str(caught.value) == ("Qualio refused the API key (403): User is not authorized to access this "
                                 "resource with an explicit deny")
    assert_requests(rsps, ["NCR-12"])


def test_401_is_the_same_fault_and_the_key_is_not_shown(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.get("https://api.qualio.com/v1/events/events/NCR-12", status=401, json={"message": f"bad key {KEY}"})
    with pytest.raises(InstallationFault) as caught:
        enricher(clock).fetch("NCR-12")
    assert "(401)" in str(caught.value) and KEY not in str(caught.value) and caught.value.__suppress_context__


# -- the rest --------------------------------------------------------------------------------------


def test_a_found_event_is_its_record(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    answer(rsps, "NCR-12", 200, fixture("event_ncr_12"))
    record = enricher(clock).fetch("NCR-12", attempt=1)
    assert record["ncId"] == "NCR-12" and "closedAt" not in record  # None values are left to the payload
    assert_requests(rsps, ["NCR-12"])


def test_429_is_an_uncounted_retry_for_the_pause_left(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    answer(rsps, "NCR-12", 429, fixture("error_429"))
    qualio = enricher(clock)
    sent = retry(qualio, "NCR-12")
    assert (sent.delay, sent.count_attempt) == (2.0, False)
    clock.now += 0.5
    refused = retry(qualio, "NCR-13")  # another NC during the pause: not sent
    assert (refused.delay, refused.count_attempt) == (1.5, False)
    assert_requests(rsps, ["NCR-12"])


def test_a_server_error_is_a_counted_retry(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.get("https://api.qualio.com/v1/events/events/NCR-12", status=503, body="busy")
    signal = retry(enricher(clock), "NCR-12")
    assert (signal.delay, signal.count_attempt) == (None, True)  # the worker's backoff decides


def test_a_redirect_is_permanent(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.get("https://api.qualio.com/v1/events/events/NCR-12", status=302, headers={"Location": "https://x.example/"})
    with pytest.raises(Permanent) as caught:
        enricher(clock).fetch("NCR-12")
    assert caught.value.step == "enrich" and "302" in str(caught.value)
