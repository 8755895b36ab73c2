"""Objects' descriptions kept a while, to check field names before a call: a wrong name is an
error naming it and the closest names the object has, and nothing is sent."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from app.salesforce.client import SalesforceClient
from app.salesforce.errors import SalesforceError

DESCRIBE_TTL = 600.0


class UnknownField(SalesforceError):
    pass


class SchemaCache:
    def __init__(
        self,
        client: SalesforceClient,
        *,
        ttl: float = DESCRIBE_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._monotonic = monotonic
        self._kept: dict[str, tuple[float, dict[str, Any]]] = {}
        self._objects: tuple[float, list[dict[str, Any]]] | None = None

    async def objects(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        """Every object of the org; `fresh`: asked again, not from what is kept."""
        if not fresh and self._objects is not None and self._monotonic() < self._objects[0]:
            return self._objects[1]
        found = await self._client.objects()
        self._objects = (self._monotonic() + self._ttl, found)
        return found

    async def describe(self, sobject: str, *, fresh: bool = False) -> dict[str, Any]:
        """`sobject`'s description; `fresh`: asked again, not from what is kept."""
        key = sobject.lower()
        kept = self._kept.get(key)
        if not fresh and kept is not None and self._monotonic() < kept[0]:
            return kept[1]
        described = await self._client.describe(sobject)
        self._kept[key] = (self._monotonic() + self._ttl, described)
        return described

    async def check_fields(
        self, sobject: str, names: Iterable[str], *, use: Literal["read", "create", "update"]
    ) -> None:
        """Every name a field of `sobject` (that can be set on a create or an update, for those),
        else an error naming the first that is not, with the closest matches."""
        described = await self.describe(sobject)
        fields = {str(f.get("name", "")).lower(): f for f in described.get("fields", [])}
        real = [str(f.get("name", "")) for f in fields.values()]
        for name in names:
            found = fields.get(name.lower())
            if found is None:
                close = difflib.get_close_matches(name, real, n=3, cutoff=0.6)
                hint = f" Did you mean {' or '.join(close)}?" if close else ""
                raise UnknownField(
                    f"{described.get('name', sobject)} has no field {name!r}.{hint}",
                    code="INVALID_FIELD",
                    fields=(name,),
                )
            settable = {"create": "createable", "update": "updateable"}.get(use)
            if settable and not found.get(settable):
                raise UnknownField(
                    f"{described.get('name', sobject)}.{found['name']} cannot be set on "
                    f"{'a create' if use == 'create' else 'an update'}.",
                    code="INVALID_FIELD_FOR_INSERT_UPDATE",
                    fields=(str(found["name"]),),
                )
