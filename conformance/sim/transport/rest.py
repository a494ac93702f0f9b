"""REST paths and error bodies shared by the HTTP transport's client and cache."""

from __future__ import annotations

import json
from typing import Any

from ..store import ApiError, ResourceType


def resource_path(rt: ResourceType, namespace: str = "", name: str = "", subresource: str = "") -> str:
    """The REST path of a collection, an object or an object's subresource."""
    base = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    if rt.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    path = f"{base}/{rt.plural}"
    if name:
        path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
    return path


def status_error(code: int, text: str, headers: Any = None) -> ApiError:
    """The :class:`ApiError` for an error response (its ``Status`` body when it has one)."""
    retry_after: float | None = None
    raw_retry = (headers or {}).get("Retry-After") if headers is not None else None
    if raw_retry:
        try:
            retry_after = float(raw_retry)
        except ValueError:
            retry_after = None
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = {}
    if isinstance(body, dict) and body.get("kind") == "Status":
        return ApiError(int(body.get("code") or code), str(body.get("reason") or ""),
                        str(body.get("message") or text), details=body.get("details") or None,
                        retry_after=retry_after)
    return ApiError(code, {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
                           410: "Expired", 422: "Invalid", 429: "TooManyRequests"}.get(code, "InternalError"),
                    text.strip()[:500] or f"HTTP {code}", retry_after=retry_after)
