"""Answers held to the OpenAPI document: a response of a documented route must have a documented status
and, for that status, the documented body and headers. schemathesis matches the route and validates."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import httpx
import schemathesis
from fastapi.testclient import TestClient


class Documented:
    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document
        self._schema = schemathesis.openapi.from_dict(document)
        self.checked = 0
        """Responses checked so far: a test can tell that its answers were."""

    def check(self, response: httpx.Response) -> None:
        request = response.request
        method, path = request.method, request.url.path
        operation = self._schema.find_operation_by_path(method, path)
        if operation is None or not self._parameters_fit(method, operation.path, path):
            return  # an unknown route, or a path no documented route takes (e.g. GET /v1/models/m:predict)
        response.read()
        documented = operation.responses.find_by_status_code(response.status_code) is not None
        assert documented, f"{operation.label} answered {response.status_code}, which it does not document"
        operation.validate_response(response)  # raises, naming the field, when the body breaks the schema
        self.checked += 1

    def _parameters_fit(self, method: str, template: str, path: str) -> bool:
        """The path's parameters match their documented patterns (the router's own path types)."""
        names = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        given = re.fullmatch(names, path)
        assert given is not None, (template, path)
        parameters = self._document["paths"][template][method.lower()].get("parameters", [])
        patterns = {p["name"]: p["schema"].get("pattern") for p in parameters if p["in"] == "path"}
        return all(re.search(p, unquote(given[name])) for name, p in patterns.items() if p is not None)


def check_responses(client: TestClient) -> Documented:
    """From now on every response the client gets is checked against the app's own document."""
    documented = Documented(client.get("/openapi.json").json())
    client.event_hooks["response"].append(documented.check)
    return documented
