from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from app.config import ConfigError, Settings, load_settings
from app.state.sealing import Sealer


def make(**values: object) -> Settings:
    return load_settings(_env_file=None, **values)


def test_missing_salesforce_settings_are_named() -> None:
    settings = make(miaw_org_id="00D000000000001EAA")
    with pytest.raises(ConfigError) as caught:
        settings.require_salesforce()
    message = str(caught.value)
    assert "MIAW_SCRT_URL" in message and "MIAW_ES_DEVELOPER_NAME" in message
    assert "MIAW_ORG_ID" not in message


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("miaw_org_id", "12345", "MIAW_ORG_ID"),
        ("miaw_es_developer_name", "has space", "MIAW_ES_DEVELOPER_NAME"),
        ("miaw_scrt_url", "ftp://x", "MIAW_SCRT_URL"),
        ("public_url", "not a url", "PUBLIC_URL"),
        ("wait_max_seconds", 45, "WAIT_MAX_SECONDS"),
    ],
)
def test_malformed_setting_is_named(field: str, value: object, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        make(**{field: value})


def test_environment_names_are_those_of_the_earlier_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIAW_SCRT_URL", "acme.my.salesforce-scrt.com/")
    monkeypatch.setenv("MIAW_ORG_ID", "00D000000000001")
    monkeypatch.setenv("MIAW_ES_DEVELOPER_NAME", "My_Deployment")
    monkeypatch.setenv("MCP_TRANSPORT", "stdio")
    monkeypatch.setenv("PORT", "5123")
    monkeypatch.setenv("MCP_ALLOWED_HOSTS", "a.example, b.example:8443")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    settings.require_salesforce()
    assert settings.mcp_transport == "stdio" and settings.port == 5123
    assert settings.miaw_scrt_url == "acme.my.salesforce-scrt.com"
    hosts = settings.allowed_hosts()
    assert {"a.example", "a.example:*", "b.example:8443"} <= set(hosts)
    assert "b.example:8443:*" not in hosts


def test_heroku_and_public_url_hosts_are_allowed() -> None:
    settings = make(heroku_app_name="myapp", public_url="https://chat.example.com/")
    hosts = settings.allowed_hosts()
    assert {"myapp.herokuapp.com", "myapp.herokuapp.com:*", "chat.example.com"} <= set(hosts)
    assert "https://myapp.herokuapp.com" in settings.allowed_origins()


def test_blank_settings_count_as_missing_not_malformed() -> None:
    settings = make(miaw_scrt_url="", miaw_org_id="  ", miaw_es_developer_name="")
    with pytest.raises(ConfigError, match="Missing required setting"):
        settings.require_salesforce()


def test_default_wait_may_not_exceed_the_cap() -> None:
    with pytest.raises(ConfigError, match="WAIT_DEFAULT_SECONDS must not exceed WAIT_MAX_SECONDS"):
        make(wait_default_seconds=25, wait_max_seconds=10)


def test_allowed_hosts_are_validated_and_lowercased() -> None:
    with pytest.raises(ConfigError, match="MCP_ALLOWED_HOSTS"):
        make(mcp_allowed_hosts=["https://chat.example.com"])
    assert "chat.example.com" in make(mcp_allowed_hosts=["Chat.Example.com"]).allowed_hosts()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tool_deadline_seconds": 29}, "TOOL_DEADLINE_SECONDS"),
        ({"tool_deadline_seconds": 4}, "TOOL_DEADLINE_SECONDS"),
        (
            {"tool_deadline_seconds": 20, "wait_max_seconds": 20, "wait_default_seconds": 10},
            r"WAIT_MAX_SECONDS must be at most TOOL_DEADLINE_SECONDS - 1 \(20 > 19\)",
        ),
        (
            {
                "tool_deadline_seconds": 10,
                "wait_max_seconds": 9,
                "wait_default_seconds": 5,
                "scrt_retry_total_seconds": 12,
            },
            r"SCRT_RETRY_TOTAL_SECONDS must not exceed TOOL_DEADLINE_SECONDS \(12 > 10\)",
        ),
        ({"burst_window_seconds": 6}, "BURST_WINDOW_SECONDS"),
    ],
)
def test_settings_that_cannot_answer_inside_the_router_limit_are_refused(
    values: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make(**values)


def test_the_longest_accepted_settings_fit_the_tool_deadline() -> None:
    settings = make(
        tool_deadline_seconds=28,
        wait_max_seconds=27,
        wait_default_seconds=27,
        scrt_retry_total_seconds=24.99,
    )
    assert settings.wait_cap == 27
    assert make().tool_deadline_seconds == 28 and make().wait_cap == 27


def test_redis_without_an_encryption_key_is_refused_saying_how_to_make_one() -> None:
    with pytest.raises(ConfigError) as caught:
        make(redis_url="redis://127.0.0.1:6379/0")
    message = str(caught.value)
    assert "STATE_ENCRYPTION_KEY" in message and "secrets.token_hex(32)" in message


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"redis_url": "http://127.0.0.1:6379"}, "REDIS_URL"),
        ({"redis_url": "redis://h", "state_encryption_key": "too-short"}, "STATE_ENCRYPTION_KEY"),
        ({"web_concurrency": 2}, "REDIS_URL"),
    ],
)
def test_bad_shared_state_settings_are_named(values: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        make(**values)


def test_a_generated_hex_secret_and_a_fernet_key_both_seal() -> None:
    for key in ("a" * 64, Fernet.generate_key().decode()):
        settings = make(redis_url="rediss://h:6380", state_encryption_key=key, web_concurrency=3)
        assert settings.state_encryption_key is not None
        sealer = Sealer(settings.state_encryption_key.get_secret_value())
        assert sealer.open(sealer.seal(b"x")) == b"x"
        assert key.encode() not in sealer.seal(b"x")
