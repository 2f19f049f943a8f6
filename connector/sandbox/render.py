"""Rendering: the sandbox's issues, comments, remote links, users, transitions (with their screens' field
metadata) and reference data as Jira's JSON, and which fields a `fields` parameter selects."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from connector.sandbox.errors import JsonDict
from connector.sandbox.fields import FIELDS, FIELDS_BY_ID, FieldSpec
from connector.sandbox.issues import Comment, Issue, RemoteLink
from connector.sandbox.reference import (
    COMPONENTS,
    ISSUE_TYPES,
    PRIORITIES,
    PROJECT_ID,
    SEVERITIES,
    STATUS_CATEGORIES,
    User,
    named,
)
from connector.sandbox.web import api, base, jira_time, sandbox
from connector.sandbox.workflows import ScreenField, Transition

ALL_FIELDS = frozenset(spec.id for spec in FIELDS)
NAVIGABLE_FIELDS = frozenset(spec.id for spec in FIELDS if spec.navigable)
AVATAR_SIZES = ("48x48", "24x24", "16x16", "32x32")
ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"


def avatar_urls(kind: str, ident: str) -> dict[str, str]:
    return {size: f"{base()}/secure/{kind}avatar?size={size}&avatarId={ident}" for size in AVATAR_SIZES}


def user_json(user: User) -> JsonDict:
    """A user as Jira shows it: Cloud by accountId, Server/Data Center by username."""
    if sandbox().config.cloud:
        ident: JsonDict = {"self": api(f"user?accountId={user.account_id}"), "accountId": user.account_id,
                           "accountType": "atlassian"}
    else:
        ident = {"self": api(f"user?username={user.name}"), "key": user.key, "name": user.name}
    return {**ident, "emailAddress": user.email, "avatarUrls": avatar_urls("user", "10122"),
            "displayName": user.display_name, "active": True, "timeZone": user.time_zone}


def user_ref(account_id: str) -> JsonDict | None:
    user = sandbox().catalog.user(account_id)
    return user_json(user) if user else None


def status_json(status_id: str) -> JsonDict:
    found = sandbox().config.definition.status(status_id)
    category = STATUS_CATEGORIES[found.category]
    return {"self": api(f"status/{found.id}"), "description": found.description,
            "iconUrl": f"{base()}/images/icons/statuses/generic.png", "name": found.name, "id": found.id,
            "statusCategory": {"self": api(f"statuscategory/{category['id']}"), **category}}


def priority_json(priority_id: str) -> JsonDict:
    found = named(PRIORITIES, priority_id)
    return {"self": api(f"priority/{found.id}"), "statusColor": found.detail, "description": found.name,
            "iconUrl": f"{base()}/images/icons/priorities/{found.name.lower()}.svg", "name": found.name,
            "id": found.id, "isDefault": found.id == "3"}


def issuetype_json(type_id: str) -> JsonDict:
    found = named(ISSUE_TYPES, type_id)
    return {"self": api(f"issuetype/{found.id}"), "id": found.id, "name": found.name, "subtask": False,
            "iconUrl": f"{base()}/secure/viewavatar?size=medium&avatarId=10303&avatarType=issuetype",
            "avatarId": 10303, "hierarchyLevel": 0}


def resolution_json(resolution_id: str) -> JsonDict:
    found = named(sandbox().config.definition.resolutions, resolution_id)
    return {"self": api(f"resolution/{found.id}"), "id": found.id, "description": found.detail,
            "name": found.name}


def component_json(component_id: str) -> JsonDict:
    found = named(COMPONENTS, component_id)
    return {"self": api(f"component/{found.id}"), "id": found.id, "name": found.name}


def option_json(option_id: str) -> JsonDict:
    found = named(SEVERITIES, option_id)
    return {"self": api(f"customFieldOption/{found.id}"), "value": found.name, "id": found.id}


def project_ref_json(project_id: str = PROJECT_ID) -> JsonDict:
    _, key, name = sandbox().project(project_id)
    return {"self": api(f"project/{project_id}"), "id": project_id, "key": key, "name": name,
            "projectTypeKey": "software", "simplified": False, "avatarUrls": avatar_urls("project", "10324")}


def project_json(project_id: str = PROJECT_ID) -> JsonDict:
    state = sandbox()
    return {"expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            **project_ref_json(project_id),
            "description": "Jira sandbox project for nc-connector.", "lead": user_json(state.catalog.me),
            "components": [component_json(c.id) for c in COMPONENTS],
            "issueTypes": [issuetype_json(t.id) for t in ISSUE_TYPES], "assigneeType": "UNASSIGNED",
            "versions": [], "roles": {}, "style": "classic", "isPrivate": False, "properties": {}}


def field_json(spec: FieldSpec) -> JsonDict:
    clauses = [f"cf[{spec.schema['customId']}]"] if spec.custom else [spec.id]
    return {"id": spec.id, "key": spec.id, "name": spec.name, "custom": spec.custom,
            "orderable": bool(spec.screens), "navigable": spec.navigable, "searchable": spec.kind != "comments",
            "clauseNames": [*clauses, *spec.clause_names], "schema": dict(spec.schema)}


def comment_json(issue: Issue, comment: Comment, with_properties: bool = False) -> JsonDict:
    author = user_ref(comment.author)
    body: JsonDict = {"self": api(f"issue/{issue.id}/comment/{comment.id}"), "id": comment.id, "author": author,
                      "body": comment.body, "updateAuthor": author, "created": jira_time(comment.created),
                      "updated": jira_time(comment.updated), "jsdPublic": True}
    if comment.visibility is not None:
        body["visibility"] = comment.visibility
    if with_properties:  # only when asked (expand=properties), as Jira does
        body["properties"] = comment.properties
    return body


def comments_page(issue: Issue, start: int = 0, limit: int | None = None, with_properties: bool = False) -> JsonDict:
    chosen = issue.comments[start:] if limit is None else issue.comments[start:start + limit]
    return {"comments": [comment_json(issue, c, with_properties) for c in chosen], "maxResults": len(chosen),
            "total": len(issue.comments), "startAt": start}


def remote_link_json(issue: Issue, link: RemoteLink) -> JsonDict:
    body: JsonDict = {"id": link.id, "self": api(f"issue/{issue.key}/remotelink/{link.id}")}
    if link.global_id is not None:
        body["globalId"] = link.global_id
    body["application"] = link.application
    if link.relationship is not None:
        body["relationship"] = link.relationship
    body["object"] = link.object
    return body


RENDERERS: dict[str, Callable[[Any], Any]] = {
    "priority": priority_json, "status": status_json, "resolution": resolution_json, "user": user_ref,
    "issuetype": issuetype_json, "project": project_ref_json, "datetime": jira_time,
    "option": option_json, "components": lambda ids: [component_json(i) for i in ids],
}


def field_value(spec: FieldSpec, issue: Issue) -> Any:
    if spec.kind == "comments":
        return comments_page(issue)
    value = issue.fields.get(spec.id)
    renderer = RENDERERS.get(spec.kind)
    return renderer(value) if renderer is not None and value is not None else value


def expand_parts(expand: str) -> set[str]:
    return {part.strip() for part in expand.split(",") if part.strip()}


def issue_json(issue: Issue, wanted: Iterable[str] = ALL_FIELDS, expand: str = "") -> JsonDict:
    selected = set(wanted)
    chosen = [spec for spec in FIELDS if spec.id in selected]
    body: JsonDict = {"expand": ISSUE_EXPAND, "id": issue.id, "self": api(f"issue/{issue.id}"), "key": issue.key,
                      "fields": {spec.id: field_value(spec, issue) for spec in chosen}}
    expanded = expand_parts(expand)
    if "names" in expanded:
        body["names"] = {spec.id: spec.name for spec in chosen}
    if "schema" in expanded:
        body["schema"] = {spec.id: dict(spec.schema) for spec in chosen}
    if expanded & {"transitions", "transitions.fields"}:
        available = sandbox().config.definition.transitions_from(issue.fields["status"])
        body["transitions"] = [transition_json(t, "transitions.fields" in expanded) for t in available]
    return body


def transition_json(transition: Transition, with_fields: bool = False) -> JsonDict:
    """A transition as GET issue/{key}/transitions lists it; `with_fields` (expand=transitions.fields) adds
    its screen's fields."""
    body: JsonDict = {"id": transition.id, "name": transition.name, "to": status_json(transition.to),
                      "hasScreen": transition.has_screen, "isGlobal": transition.is_global, "isInitial": False,
                      "isAvailable": True, "isConditional": False, "isLooped": False}
    if with_fields:
        body["fields"] = {f.field_id: screen_field_json(f) for f in transition.screen}
    return body


ALLOWED_VALUES: dict[str, Callable[[], list[JsonDict]]] = {
    "resolution": lambda: [resolution_json(r.id) for r in sandbox().config.definition.resolutions],
    "priority": lambda: [priority_json(p.id) for p in PRIORITIES],
    "issuetype": lambda: [issuetype_json(t.id) for t in ISSUE_TYPES],
    "components": lambda: [component_json(c.id) for c in COMPONENTS],
    "option": lambda: [option_json(o.id) for o in SEVERITIES],
}


def screen_field_json(screen_field: ScreenField) -> JsonDict:
    """A transition screen's field as Jira's FieldMetadata."""
    spec = FIELDS_BY_ID[screen_field.field_id]
    operations = ["add", "set", "remove"] if spec.kind in ("labels", "components") else ["set"]
    body: JsonDict = {"required": screen_field.required, "schema": dict(spec.schema), "name": spec.name,
                      "key": spec.id, "operations": operations}
    allowed = ALLOWED_VALUES.get(spec.kind)
    if allowed is not None:
        body["allowedValues"] = allowed()
    body["hasDefaultValue"] = False
    return body


def wanted_fields(values: Iterable[Any], default: str) -> frozenset[str]:
    """Field ids selected by a `fields` parameter: ids, *all, *navigable, -excluded (id/key select none)."""
    tokens = [t.strip() for value in values for t in str(value).split(",") if t.strip()] or [default]
    chosen: set[str] = set()
    for token in tokens:
        if token == "*all":
            chosen |= ALL_FIELDS
        elif token == "*navigable":
            chosen |= NAVIGABLE_FIELDS
        elif token in ALL_FIELDS:
            chosen.add(token)
    return frozenset(chosen - {t[1:] for t in tokens if t.startswith("-")})
