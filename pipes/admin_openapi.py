"""The OpenAPI 3.1 document of the admin API, served at ``/openapi.json``.

Written by hand next to the handlers it describes (pipes/admin.py); a test
checks that every route of the app is in it and nothing else.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_STATES = ["STARTING", "RUNNING", "DEGRADED", "STOPPING", "STOPPED", "FAILED"]


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_UNAUTHORIZED = _json_response("PIPES_ADMIN_TOKEN is set and the bearer token is missing or wrong.", _ERROR)
_NOT_FOUND = _json_response("No pipe has that name.", _ERROR)
_FORBIDDEN = _json_response(
    "The Host header does not name this server (DNS rebinding?), or the request comes from another origin.",
    _ERROR,
)
_NEEDS_JSON = _json_response(
    "A request that changes something needs Content-Type: application/json or an X-Pipes-Request header.",
    _ERROR,
)
_EMPTY_JSON_BODY = {
    "required": False,
    "description": "Ignored; send `{}` with Content-Type: application/json.",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The pipe's name.",
    "schema": {"type": "string"},
}


def _control(verb: str, desired: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"{verb}Pipe",
            "summary": f"Set the pipe's desired state to {desired}.",
            "description": (
                f"The pipe {'starts' if desired == 'RUNNING' else 'stops, drains and commits'} in the "
                "background. The desired state is kept in memory: a daemon restart, or a change of "
                "`state:` in the pipe's file, overrides it."
            ),
            "parameters": [_NAME],
            "responses": {
                "200": _json_response(
                    "Already so; nothing changes.", {"$ref": "#/components/schemas/Desired"}
                ),
                "202": _json_response(
                    "Accepted; the change is under way.", {"$ref": "#/components/schemas/Desired"}
                ),
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
                "409": _json_response("The daemon is shutting down.", _ERROR),
            },
        }
    }


def _tap() -> dict[str, Any]:
    def query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

    return {
        "get": {
            "operationId": "tapPipe",
            "summary": "A live tap: copies of the events passing the pipe's stages, as server-sent events.",
            "description": (
                "Events: `attached` (the tap's settings), `tap` (one line: time, pipe, stage, outcome, "
                "partition, position, and record, payload, result, dead_letter or error), `dropped` "
                "(lines lost because this viewer is slower than the pipe: counts so far), `end` (reason: "
                "limit, pipe removed, daemon stopping; counts). A comment is sent every few seconds while "
                "nothing happens. The pipe never waits for a viewer. At most 8 taps per pipe."
            ),
            "parameters": [
                _NAME,
                query(
                    "stage",
                    "source, filter, enrichment, transform, target, dead_letter; comma-separated or "
                    "repeated (default: all).",
                    {"type": "string"},
                ),
                query("where", "An event pattern (JSON) over the tap line.", {"type": "string"}),
                query("limit", "Lines to send, then end the tap.", {"type": "integer", "minimum": 1}),
                query(
                    "rate",
                    "Lines per second at most (default 200; 0 for no limit).",
                    {"type": "number", "minimum": 0},
                ),
            ],
            "responses": {
                "200": {
                    "description": "The stream.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "400": _json_response("A query parameter is wrong.", _ERROR),
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
                "429": _json_response("The pipe has as many taps as it takes.", _ERROR),
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    document = _document()
    for item in document["paths"].values():
        for method, operation in item.items():
            operation["responses"]["403"] = _FORBIDDEN
            if method == "post":
                operation["responses"]["415"] = _NEEDS_JSON
                operation["requestBody"] = _EMPTY_JSON_BODY
    return document


def _document() -> dict[str, Any]:
    counters = {
        "type": "object",
        "description": "Counters over every run of the pipe in this process.",
        "properties": {
            **{
                k: {"type": "integer"}
                for k in (
                    "received",
                    "filtered",
                    "dropped",
                    "delivered",
                    "failed",
                    "retried",
                    "dead_lettered",
                )
            },
            "failed_by_stage": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    }
    summary = {
        "type": "object",
        "required": ["name", "file", "state", "desired_state", "counters", "last_error"],
        "properties": {
            "name": {"type": "string"},
            "file": {"type": "string", "description": "The file the pipe is defined in."},
            "state": {"type": "string", "enum": _STATES},
            "desired_state": {"type": "string", "enum": ["RUNNING", "STOPPED"]},
            "counters": {"$ref": "#/components/schemas/Counters"},
            "last_error": {"type": ["string", "null"]},
            "in_flight": {"type": "integer", "description": "Events taken from the source, not settled yet."},
            "lag": {
                "type": ["integer", "null"],
                "description": "Unread events over all partitions, where the source knows; else null.",
            },
        },
    }
    detail = {
        "allOf": [
            {"$ref": "#/components/schemas/PipeSummary"},
            {
                "type": "object",
                "properties": {
                    "checkpoint": {
                        "type": ["object", "null"],
                        "description": "Last settled position per partition.",
                        "additionalProperties": {"type": ["integer", "string"]},
                    },
                    "source_lag": {
                        "type": ["object", "null"],
                        "description": "Unread events per partition, where the source knows.",
                        "additionalProperties": {"type": "integer"},
                    },
                },
            },
        ]
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pipes admin API",
            "version": "1",
            "description": (
                "Health, readiness, metrics and control of the pipes of one `pipes run` process. "
                "With PIPES_ADMIN_TOKEN set, every endpoint but /healthz requires "
                "`Authorization: Bearer <token>`. The Host header must name this server, a request "
                "from another Origin is refused, and a POST needs `Content-Type: application/json` "
                "(or an `X-Pipes-Request` header)."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:9900"}],
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness: 200 while the process is alive. Never needs the token.",
                    "security": [],
                    "responses": {"200": _json_response("Alive.", {"type": "object"})},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "ready",
                    "summary": "Readiness: every pipe whose desired state is RUNNING is RUNNING.",
                    "responses": {
                        "200": _json_response("Ready.", {"$ref": "#/components/schemas/Readiness"}),
                        "401": _UNAUTHORIZED,
                        "503": _json_response(
                            "Not ready (or shutting down); names the pipes that are not RUNNING.",
                            {"$ref": "#/components/schemas/Readiness"},
                        ),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (text exposition format 0.0.4).",
                    "responses": {
                        "200": {
                            "description": "Metrics.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": _UNAUTHORIZED,
                    },
                }
            },
            "/pipes": {
                "get": {
                    "operationId": "listPipes",
                    "summary": "Every configured pipe with its state, desired state and counters.",
                    "responses": {
                        "200": _json_response(
                            "The pipes.",
                            {
                                "type": "object",
                                "properties": {
                                    "pipes": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/PipeSummary"},
                                    }
                                },
                            },
                        ),
                        "401": _UNAUTHORIZED,
                    },
                }
            },
            "/pipes/{name}": {
                "get": {
                    "operationId": "getPipe",
                    "summary": "One pipe, with checkpoint positions and source lag.",
                    "parameters": [_NAME],
                    "responses": {
                        "200": _json_response("The pipe.", {"$ref": "#/components/schemas/PipeDetail"}),
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                    },
                }
            },
            "/pipes/{name}/tap": _tap(),
            "/pipes/{name}/stop": _control("stop", "STOPPED"),
            "/pipes/{name}/start": _control("start", "RUNNING"),
            "/reload": {
                "post": {
                    "operationId": "reload",
                    "summary": "Read the pipe files again, as SIGHUP does.",
                    "description": (
                        "New files start their pipes, removed files stop theirs, changed pipes restart "
                        "alone; unchanged pipes are not touched. An invalid file changes nothing of its "
                        "own and is reported in `errors` (then the status is 422)."
                    ),
                    "responses": {
                        "200": _json_response("Applied.", {"$ref": "#/components/schemas/Reload"}),
                        "401": _UNAUTHORIZED,
                        "409": _json_response("The daemon is shutting down.", _ERROR),
                        "422": _json_response(
                            "Applied, but some files are invalid.", {"$ref": "#/components/schemas/Reload"}
                        ),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {
                        "200": _json_response("OpenAPI 3.1.", {"type": "object"}),
                        "401": _UNAUTHORIZED,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "Reload": {
                    "type": "object",
                    "required": ["added", "removed", "restarted", "unchanged", "errors"],
                    "properties": {
                        key: {"type": "array", "items": {"type": "string"}}
                        for key in ("added", "removed", "restarted", "unchanged", "errors")
                    }
                    | {"error": {"type": "string"}},
                },
                "Counters": counters,
                "PipeSummary": summary,
                "PipeDetail": detail,
                "Desired": {
                    "type": "object",
                    "required": ["name", "desired_state", "state"],
                    "properties": {
                        "name": {"type": "string"},
                        "desired_state": {"type": "string", "enum": ["RUNNING", "STOPPED"]},
                        "state": {"type": "string", "enum": _STATES},
                    },
                },
                "Readiness": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": {"type": "string"},
                        "not_ready": {
                            "type": "object",
                            "description": "Pipe name to its current state.",
                            "additionalProperties": {"type": "string", "enum": _STATES},
                        },
                    },
                },
            },
        },
    }
