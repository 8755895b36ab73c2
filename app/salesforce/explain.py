"""An object summed up for a model about to query it: what names a record, what a create needs,
the lookups it follows (parents) and the objects that point at it (children) with the names a
query uses for each, its picklists, and a query that works as a starting point."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

KEY_TYPES = ("id", "reference")


class Parent(BaseModel):
    field: str = Field(description="The lookup field (holds the parent's id)")
    relationshipName: str = Field(description="What a query writes: relationshipName.Field")
    objects: list[str] = Field(description="The parent's object; several: polymorphic")


class Child(BaseModel):
    object: str
    field: str = Field(description="The child's lookup field pointing here")
    relationshipName: str = Field(description="What a subquery's FROM names")


class ObjectSummary(BaseModel):
    name: str
    label: str | None
    custom: bool
    nameField: str | None = Field(description="The field that names a record")
    requiredOnCreate: list[str]
    parents: list[Parent]
    children: list[Child]
    picklists: dict[str, list[str]] = Field(description="Picklist field → its values")
    fields: dict[str, str] = Field(description="Every field's API name → its type")
    exampleQuery: str


def summary(described: dict[str, Any]) -> ObjectSummary:
    name = str(described.get("name"))
    fields = list(described.get("fields", []))
    names = [str(f.get("name")) for f in fields]
    name_field = next((str(f["name"]) for f in fields if f.get("nameField")), None)
    if name_field is None:
        name_field = next((n for n in ("Name", "LastName", "Subject") if n in names), None)
    parents = [
        Parent(
            field=str(f["name"]),
            relationshipName=str(f["relationshipName"]),
            objects=[str(o) for o in f.get("referenceTo") or []],
        )
        for f in fields
        if f.get("relationshipName") and f.get("referenceTo")
    ]
    children = [
        Child(
            object=str(c.get("childSObject")),
            field=str(c.get("field")),
            relationshipName=str(c["relationshipName"]),
        )
        for c in described.get("childRelationships", [])
        if c.get("relationshipName")
    ]
    return ObjectSummary(
        name=name,
        label=described.get("label"),
        custom=bool(described.get("custom")),
        nameField=name_field,
        requiredOnCreate=[
            str(f["name"])
            for f in fields
            if not f.get("nillable", True)
            and f.get("createable")
            and not f.get("defaultedOnCreate")
        ],
        parents=parents,
        children=children,
        picklists={
            str(f["name"]): [
                str(p.get("value")) for p in f["picklistValues"] if p.get("active", True)
            ]
            for f in fields
            if f.get("picklistValues")
        },
        fields={str(f.get("name")): str(f.get("type")) for f in fields},
        exampleQuery=_example(name, name_field, parents, children),
    )


def _example(
    name: str, name_field: str | None, parents: list[Parent], children: list[Child]
) -> str:
    columns = ["Id"] + ([name_field] if name_field else [])
    single = next((p for p in parents if len(p.objects) == 1), None)
    if single is not None:
        columns.append(f"{single.relationshipName}.Id")
    if children:
        columns.append(f"(SELECT Id FROM {children[0].relationshipName} LIMIT 5)")
    return f"SELECT {', '.join(columns)} FROM {name} LIMIT 10"
