"""One declaration of every setting: defaults, validation naming the key, secrets redacted."""

from __future__ import annotations

import pytest

from connector.settings import SETTINGS, SettingsError, load_settings, parse_duration, require_webhook_auth
from tests.conftest import TEST_SECRET


def test_defaults():
    s = load_settings({})
    assert s.database_url == "sqlite:///nc-connector.db"
    assert s.max_body_bytes == 1024 * 1024
    assert s.fingerprint_retention == 7 * 86400
    assert s.webhook_secret == () and s.webhook_token is None and s.allow_unsigned is False


@pytest.mark.parametrize(("env", "value", "named"), [
    ("NC_CONNECTOR_MAX_BODY_BYTES", "lots", "NC_CONNECTOR_MAX_BODY_BYTES"),
    ("NC_CONNECTOR_MAX_BODY_BYTES", "-1", "NC_CONNECTOR_MAX_BODY_BYTES"),
    ("NC_CONNECTOR_FINGERPRINT_RETENTION", "a week", "NC_CONNECTOR_FINGERPRINT_RETENTION"),
    ("NC_CONNECTOR_ALLOW_UNSIGNED", "maybe", "NC_CONNECTOR_ALLOW_UNSIGNED"),
    ("NC_CONNECTOR_DATABASE_URL", "mysql://x", "NC_CONNECTOR_DATABASE_URL"),
    ("NC_CONNECTOR_JIRA_URL", "jira.example.com", "NC_CONNECTOR_JIRA_URL"),
    ("NC_CONNECTOR_WEBHOOK_SECRET", "whsec_!!!", "NC_CONNECTOR_WEBHOOK_SECRET"),
])
def test_bad_values_name_the_key(env, value, named):
    with pytest.raises(SettingsError, match=named):
        load_settings({env: value})


def test_secret_values_never_in_errors_or_repr():
    with pytest.raises(SettingsError) as err:
        load_settings({"NC_CONNECTOR_WEBHOOK_SECRET": "whsec_not*base64*hunter2"})
    assert "hunter2" not in str(err.value)
    s = load_settings({"NC_CONNECTOR_WEBHOOK_SECRET": TEST_SECRET, "NC_CONNECTOR_JIRA_API_TOKEN": "jira-tok-xyz",
                       "NC_CONNECTOR_WEBHOOK_TOKEN": "bearer-abc"})
    for shown in (repr(s), str(s)):
        assert TEST_SECRET not in shown and "jira-tok-xyz" not in shown and "bearer-abc" not in shown
        assert "<secret>" in shown
    assert "jira-tok-xyz" in s.secrets


def test_config_file_and_env_precedence(tmp_path):
    path = tmp_path / "nc.toml"
    path.write_text('max_body_bytes = 2048\nallow_unsigned = true\nfingerprint_exclude = ["meta.attempt"]\n')
    s = load_settings({"NC_CONNECTOR_CONFIG_FILE": str(path), "NC_CONNECTOR_MAX_BODY_BYTES": "4096"})
    assert s.max_body_bytes == 4096 and s.allow_unsigned is True and s.fingerprint_exclude == ("meta.attempt",)


def test_config_file_unknown_key_is_named(tmp_path):
    path = tmp_path / "nc.toml"
    path.write_text("max_body_byte = 1\n")
    with pytest.raises(SettingsError, match="max_body_byte"):
        load_settings({"NC_CONNECTOR_CONFIG_FILE": str(path)})


def test_serve_needs_some_authentication():
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET"):
        require_webhook_auth(load_settings({}))
    require_webhook_auth(load_settings({"NC_CONNECTOR_ALLOW_UNSIGNED": "true"}))


def test_every_secret_has_no_default_and_every_env_name_is_prefixed():
    for s in SETTINGS:
        assert s.env.startswith("NC_CONNECTOR_")
        if s.secret:
            assert s.default is None, s.name


@pytest.mark.parametrize(("raw", "seconds"), [("7d", 604800), ("12h", 43200), ("30m", 1800), ("45", 45),
                                              ("0.5s", 0.5)])
def test_durations(raw, seconds):
    assert parse_duration(raw) == seconds


def test_readme_configuration_reference_is_the_declared_one():
    from pathlib import Path

    from connector.settings import reference_table

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert reference_table() in readme
