"""Configuration is normalised and validated once, at construction."""

from __future__ import annotations

import pytest

from app import __version__
from app.scrt import ScrtConfig
from tests.scrt.conftest import ORG_15, ORG_18


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("acme.my.salesforce-scrt.com", "https://acme.my.salesforce-scrt.com"),
        ("acme.my.salesforce-scrt.com/", "https://acme.my.salesforce-scrt.com"),
        ("https://acme.my.salesforce-scrt.com/", "https://acme.my.salesforce-scrt.com"),
        ("  https://acme.my.salesforce-scrt.com  ", "https://acme.my.salesforce-scrt.com"),
        ("http://127.0.0.1:8081/", "http://127.0.0.1:8081"),
        ("localhost:8081", "https://localhost:8081"),
    ],
)
def test_scrt_url_gets_a_scheme_and_loses_the_trailing_slash(given: str, expected: str) -> None:
    config = ScrtConfig(scrt_url=given, org_id=ORG_18, es_developer_name="D")

    assert config.scrt_url == expected
    assert config.url("/eventrouter/v1/sse") == f"{expected}/eventrouter/v1/sse"


@pytest.mark.parametrize("org_id", [ORG_15, ORG_18])
def test_both_org_id_lengths_give_the_15_char_header_form(org_id: str) -> None:
    config = ScrtConfig(scrt_url="x.example", org_id=org_id, es_developer_name="D")

    assert config.org_id == org_id
    assert config.org_id_15 == ORG_15


@pytest.mark.parametrize(
    "org_id",
    ["", "005000000000001", "00D123", ORG_18 + "X", "00D5g000004XyZaEA", "00D5g000004Xy-a"],
)
def test_a_malformed_org_id_is_rejected_naming_the_field(org_id: str) -> None:
    with pytest.raises(ValueError, match="org_id"):
        ScrtConfig(scrt_url="x.example", org_id=org_id, es_developer_name="D")


@pytest.mark.parametrize("url", ["", "ftp://host", "https://"])
def test_a_malformed_url_is_rejected_naming_the_field(url: str) -> None:
    with pytest.raises(ValueError, match="scrt_url"):
        ScrtConfig(scrt_url=url, org_id=ORG_18, es_developer_name="D")


def test_defaults_identify_this_client() -> None:
    config = ScrtConfig(scrt_url="x.example", org_id=ORG_18, es_developer_name=" Dep ")

    assert config.es_developer_name == "Dep"
    assert (config.capabilities_version, config.platform) == ("1", "Web")
    assert (config.app_name, config.client_version) == ("miaw-mcp", __version__)


def test_config_is_immutable() -> None:
    config = ScrtConfig(scrt_url="x.example", org_id=ORG_18, es_developer_name="D")

    with pytest.raises(ValueError):
        config.org_id = ORG_15
