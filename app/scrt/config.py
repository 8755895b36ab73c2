"""Where and as whom the client talks to Salesforce: one immutable value, validated once.

`scrt_url` is normalised because operators paste it in every form (with or without scheme or
trailing slash; the earlier TypeScript server broke on a doubled scheme). The org id is validated
early because a wrong one only shows up later as a puzzling SSE `400`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

from app import __version__

_ORG_ID = re.compile(r"00D[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?")
_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def org_id_18(org_id: str) -> str:
    """The 18-character form of a Salesforce id: the 15 characters and their case checksum (an
    18-character id is returned as it is)."""
    if len(org_id) == 18:
        return org_id
    suffix = ""
    for start in (0, 5, 10):
        chunk = org_id[start : start + 5]
        suffix += _ID_SUFFIX[sum(1 << i for i, c in enumerate(chunk) if "A" <= c <= "Z")]
    return org_id + suffix


class ScrtConfig(BaseModel):
    """Deployment coordinates; shared by every user of the process (holds no token)."""

    model_config = ConfigDict(frozen=True)

    scrt_url: str
    """Base URL, e.g. `https://acme.my.salesforce-scrt.com`; stored with scheme, without slash."""
    org_id: str
    """15- or 18-character org id (`00D…`), sent as given in request bodies."""
    es_developer_name: str
    capabilities_version: str = "1"
    platform: str = "Web"
    app_name: str = "miaw-mcp"
    client_version: str = __version__

    @field_validator("scrt_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        url = value.strip()
        if "://" not in url:
            url = f"https://{url}"
        parts = urlsplit(url)
        url = url.rstrip("/")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"scrt_url must be an http(s) URL or a host name, got {value!r}")
        return url

    @field_validator("org_id")
    @classmethod
    def _check_org_id(cls, value: str) -> str:
        org_id = value.strip()
        if not _ORG_ID.fullmatch(org_id):
            raise ValueError("org_id must be a 15- or 18-character Salesforce org id (00D…)")
        return org_id

    @field_validator("es_developer_name")
    @classmethod
    def _check_developer_name(cls, value: str) -> str:
        name = value.strip()
        if not name:
            raise ValueError("es_developer_name must not be empty")
        return name

    @property
    def org_id_15(self) -> str:
        """The 15-character form; the SSE `X-Org-Id` header rejects the 18-character one."""
        return self.org_id[:15]

    def url(self, path: str) -> str:
        return f"{self.scrt_url}{path}"
