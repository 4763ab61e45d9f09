"""The `$apply` operations' input as typed fields (R4 §12.18.4.1 PlanDefinition/$apply, §12.21.4.1
ActivityDefinition/$apply; CPG IG `data`, `prefetchData`, `useServerData`, `dataEndpoint`),
parsed once from the Parameters body.

Rules: `parameter` and `part` are arrays of objects with a string `name` (R4 Parameters),
whatever else arrives; a parameter of the base operation appears at most once; `subject` is a
`Patient/id` reference, `encounter` an `Encounter/id` one, `practitioner` any `Type/id`; `data`
and `draftOrders` are Bundles; each `prefetchData` has parts `key` (valueString) and `data`
(resource).  Project parameters (not in the base spec) for hook-shaped calls: `hook`
(valueCode), `draftOrders` (resource Bundle) and `selections` (valueString, repeating).  Each
violation is an InvalidRequest naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.data import check_value
from service.errors import InvalidRequest
from service.logtext import shown

_SINGLE = ("subject", "encounter", "practitioner", "organization", "userType", "userLanguage", "userTaskContext",
           "setting", "settingContext", "url", "hook", "useServerData", "data", "dataEndpoint", "draftOrders")


@dataclass(frozen=True)
class ApplyRequest:
    url: str | None  # the artifact's canonical URL (the `url` parameter), for type-level calls
    subject: str  # "Patient/<id>"
    encounter: str | None = None
    practitioner: str | None = None
    hook: str | None = None
    draft_orders: dict | None = None
    selections: tuple[str, ...] = ()
    prefetch_data: tuple[tuple[str, Any], ...] = ()  # (key, resource or None), as sent
    data: dict | None = None  # the `data` Bundle
    use_server_data: bool = False
    data_endpoint: str | None = None  # the dataEndpoint Endpoint's address

    @property
    def patient_id(self) -> str:
        return self.subject.split("/", 1)[1]

    @property
    def encounter_id(self) -> str | None:
        return self.encounter.split("/", 1)[1] if self.encounter else None


def parse_apply_request(body: Any, artifact: str | None) -> ApplyRequest:
    """`artifact`: the id in the path (instance-level call), else None (the `url` parameter is then required)."""
    params = parse_parameters(body)
    url = params.get("url")
    if artifact is None:
        if not url:
            raise InvalidRequest("type-level $apply needs the 'url' parameter", expression="url")
        if not isinstance(url, str):
            raise InvalidRequest("parameter 'url' must be a canonical URL (a string)", expression="url")
    subject = _reference(params, "subject", "Patient", required=True)
    hook = params.get("hook")
    if hook is not None and not isinstance(hook, str):
        raise InvalidRequest("parameter 'hook' must be a code", expression="hook")
    draft = params.get("draftOrders")
    if draft is not None and (not isinstance(draft, dict) or draft.get("resourceType") != "Bundle"):
        raise InvalidRequest("parameter 'draftOrders' must be a Bundle", expression="draftOrders")
    encounter = _reference(params, "encounter", "Encounter")
    practitioner = _reference(params, "practitioner")
    for key, resource in params["prefetchData"]:
        check_value(key, resource)
    bundle = params.get("data")
    if bundle is not None:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise InvalidRequest("parameter 'data' must be a Bundle", expression="data")
        check_value("data", bundle)
    endpoint = params.get("dataEndpoint")
    address = endpoint.get("address") if isinstance(endpoint, dict) else None
    assert subject is not None
    return ApplyRequest(
        url=url if isinstance(url, str) else None, subject=subject, encounter=encounter, practitioner=practitioner,
        hook=hook, draft_orders=draft,
        selections=tuple(s for s in params["selections"] if isinstance(s, str)),
        prefetch_data=tuple(params["prefetchData"]), data=bundle,
        use_server_data=params.get("useServerData") is True,
        data_endpoint=address if isinstance(address, str) and address else None,
    )


# Parameters a GET may carry (FHIR R4 §3.1.0.1.5 Operations: an operation without side effects whose
# parameters are all primitive may be invoked with GET, each parameter a query parameter), and their types.
QUERY_PARAMETERS = {"subject": "valueString", "encounter": "valueString", "practitioner": "valueString",
                    "hook": "valueCode", "url": "valueUri", "selections": "valueString"}


def parameters_from_query(query: Mapping[str, list[str]], ignored: tuple[str, ...] = ()) -> dict:
    """A GET's query as the Parameters resource the POST form sends; InvalidRequest for a parameter
    that is not primitive or not known (`ignored`: the service's own flags, such as `_trace`)."""
    parameters = []
    for name, values in query.items():
        if name in ignored:
            continue
        kind = QUERY_PARAMETERS.get(name)
        if kind is None:
            raise InvalidRequest(f"parameter '{shown(name, 100)}' cannot be given in a GET (it is not a primitive "
                                 f"parameter of $apply; POST a Parameters resource)", expression=name)
        parameters += [{"name": name, kind: value} for value in values]
    return {"resourceType": "Parameters", "parameter": parameters}


def parse_parameters(body: Any) -> dict[str, Any]:
    """Parameters resource -> {name: value or [values]}; InvalidRequest naming what is wrong."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest("the body must be a FHIR Parameters resource", expression="resourceType")
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list):
        raise InvalidRequest("Parameters.parameter must be an array", expression="Parameters.parameter")
    params: dict[str, Any] = {"prefetchData": [], "selections": []}
    for i, p in enumerate(parameters):
        where = f"Parameters.parameter[{i}]"
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise InvalidRequest(f"{where} needs a name (a string)", expression=where)
        name = p["name"]
        if name == "prefetchData":
            params["prefetchData"].append(_prefetch_data(p, where))
            continue
        value = p.get("resource", next((v for k, v in p.items() if k.startswith("value")), None))
        if value is None:
            raise InvalidRequest(f"parameter '{shown(name, 100)}' has no value", expression=where)
        if name == "selections":
            params["selections"].append(value)
        elif name in params and name in _SINGLE:
            raise InvalidRequest(f"parameter '{shown(name, 100)}' may appear only once", expression=where)
        else:
            params[name] = value
    return params


def _prefetch_data(p: Mapping[str, Any], where: str) -> tuple[str, Any]:
    parts = p.get("part")
    if not isinstance(parts, list) or not all(isinstance(q, dict) and isinstance(q.get("name"), str) for q in parts):
        raise InvalidRequest(f"{where}.part must be an array of parameters, each with a name (a string)",
                             expression=f"{where}.part")
    named = {q["name"]: q for q in parts}
    key = named.get("key", {}).get("valueString")
    if not isinstance(key, str) or not key or "data" not in named:
        raise InvalidRequest(f"{where} (prefetchData) needs parts 'key' (valueString) and 'data' (resource)",
                             expression=where)
    return key, named["data"].get("resource")


def _reference(params: dict, name: str, kind: str | None = None, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"parameter {name!r} is required", expression=name)
        return None
    if not isinstance(value, str) or "/" not in value or (kind and not value.startswith(kind + "/")):
        raise InvalidRequest(f"parameter {name!r} must be a reference like '{kind or 'Type'}/id', got "
                             f"{shown(repr(value), 80)}", expression=name)
    return value
