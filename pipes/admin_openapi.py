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


def openapi_document() -> dict[str, Any]:
    document = _document()
    document["paths"].update(_console_paths())
    document["components"]["schemas"].update(_console_schemas())
    for item in document["paths"].values():
        for method, operation in item.items():
            operation["responses"]["403"] = _FORBIDDEN
            if method == "post":
                operation["responses"]["415"] = _NEEDS_JSON
                operation.setdefault("requestBody", _EMPTY_JSON_BODY)
    return document


def _json_body(description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "description": description, "content": {"application/json": {"schema": schema}}}


def _console_paths() -> dict[str, Any]:
    """The console's own routes (``pipes.console.routes``): pages, files, login, composer helpers."""
    page = {
        "get": {
            "operationId": "consolePage",
            "summary": "The console (docs/console.md); without the token, its login page.",
            "security": [],
            "responses": {
                "200": {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}}
            },
        }
    }
    yaml_body = {
        "yaml": {"type": "string", "description": "The pipe file's text."},
        "edit": {"type": "string", "description": "The pipe being edited (its file is rewritten), if any."},
    }
    checked = _json_response("The check.", {"$ref": "#/components/schemas/Checked"})
    return {
        "/ui": page,
        "/ui/": {"get": {**page["get"], "operationId": "consolePageSlash"}},
        "/ui/static/{path}": {
            "get": {
                "operationId": "consoleFile",
                "summary": "A file of the console (scripts, styles, vendored libraries); no token needed.",
                "security": [],
                "parameters": [
                    {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "The file."},
                    "304": {"description": "Not modified (If-None-Match)."},
                    "404": {"description": "No such file."},
                },
            }
        },
        "/ui/login": {
            "post": {
                "operationId": "consoleLogin",
                "summary": "Check the token and set the session cookie (HttpOnly, SameSite=Strict).",
                "security": [],
                "requestBody": _json_body("The token.", {"token": {"type": "string"}}, ["token"]),
                "responses": {
                    "200": _json_response("Logged in (or no token is needed).", {"type": "object"}),
                    "401": _json_response("Wrong token.", _ERROR),
                },
            }
        },
        "/ui/logout": {
            "post": {
                "operationId": "consoleLogout",
                "summary": "Clear the session cookie.",
                "security": [],
                "responses": {"200": _json_response("Logged out.", {"type": "object"})},
            }
        },
        "/ui/api/settings": {
            "get": {
                "operationId": "consoleSettings",
                "summary": "Whether Save may write files (--ui-write), and the folder they go to.",
                "responses": {"200": _json_response("Settings.", {"type": "object"}), "401": _UNAUTHORIZED},
            }
        },
        "/ui/api/connectors": {
            "get": {
                "operationId": "consoleConnectors",
                "summary": "The installed connectors, each role with its form fields (from its options' JSON schema).",
                "responses": {"200": _json_response("Connectors.", {"type": "object"}), "401": _UNAUTHORIZED},
            }
        },
        "/ui/api/filter": {
            "post": {
                "operationId": "consoleTryFilter",
                "summary": "Does a sample event pass a filter as written? (`pipes test-event-pattern`)",
                "requestBody": _json_body(
                    "The filter (a list of patterns, or {patterns, jmespath}) and the source record.",
                    {"filter": {}, "event": {"type": "object"}},
                    ["filter", "event"],
                ),
                "responses": {
                    "200": _json_response(
                        "`match`, or `error` (and `path`) when the filter is invalid.", {"type": "object"}
                    ),
                    "401": _UNAUTHORIZED,
                },
            }
        },
        "/ui/api/transform": {
            "post": {
                "operationId": "consoleRender",
                "summary": "A transform as written, rendered for a sample event (`pipes render-template`).",
                "requestBody": _json_body(
                    "The transform ({template} or {jmespath}), the source record, and names for <aws.pipes.*>.",
                    {
                        "transform": {"type": "object"},
                        "event": {"type": "object"},
                        "names": {"type": "object"},
                    },
                    ["transform", "event"],
                ),
                "responses": {
                    "200": _json_response("`output` (and `text`), or `error`.", {"type": "object"}),
                    "401": _UNAUTHORIZED,
                },
            }
        },
        "/ui/api/validate": {
            "post": {
                "operationId": "consoleValidate",
                "summary": "Check a pipe file's YAML as `pipes validate` does; secrets must be ${VAR}.",
                "requestBody": _json_body("The YAML.", yaml_body, ["yaml"]),
                "responses": {"200": checked, "401": _UNAUTHORIZED},
            }
        },
        "/ui/api/save": {
            "post": {
                "operationId": "consoleSave",
                "summary": "Check the YAML, write it into the daemon's pipe folder, reload (only with --ui-write).",
                "requestBody": _json_body("The YAML.", yaml_body, ["yaml"]),
                "responses": {
                    "200": _json_response("Written and reloaded.", {"type": "object"}),
                    "401": _UNAUTHORIZED,
                    "403": _json_response("The daemon was started without --ui-write.", _ERROR),
                    "409": _json_response("Nothing to save there, or the daemon is stopping.", _ERROR),
                    "422": checked,
                },
            }
        },
    }


def _console_schemas() -> dict[str, Any]:
    return {
        "Checked": {
            "type": "object",
            "required": ["ok", "pipes", "errors", "variables"],
            "properties": {
                "ok": {"type": "boolean"},
                "pipes": {"type": "array", "items": {"type": "string"}},
                "file": {"type": ["string", "null"]},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "line": {"type": "integer"},
                            "column": {"type": "integer"},
                            "path": {
                                "type": "string",
                                "description": "Dotted path of the key, e.g. source.count.",
                            },
                            "message": {"type": "string"},
                            "text": {
                                "type": "string",
                                "description": "The whole FILE:LINE:COL: path: message line.",
                            },
                        },
                    },
                },
                "variables": {
                    "type": "array",
                    "description": "Each ${VAR} the YAML names: where, whether it holds a secret, whether it is set.",
                    "items": {"type": "object"},
                },
            },
        }
    }


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
            "/pipes/{name}/definition": {
                "get": {
                    "operationId": "getPipeDefinition",
                    "summary": "The pipe's file as written: `${VAR}` not expanded, plain secrets masked.",
                    "description": (
                        "Read from disk now: after an edit not yet reloaded it differs from what runs. "
                        "`pipe` is this pipe as written; `error` says why the file could not be read."
                    ),
                    "parameters": [_NAME],
                    "responses": {
                        "200": _json_response("The file.", {"$ref": "#/components/schemas/Definition"}),
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                    },
                }
            },
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
            "/systems": {
                "get": {
                    "operationId": "listSystems",
                    "summary": "The systems the pipes connect (topics, streams, files...), each once, and each pipe's ends.",
                    "description": (
                        "A pipe whose target is a Kafka topic and one whose source is that topic name the same "
                        "system id (docs/console.md#the-map)."
                    ),
                    "responses": {
                        "200": _json_response("The map.", {"$ref": "#/components/schemas/Systems"}),
                        "401": _UNAUTHORIZED,
                    },
                }
            },
            "/rates": {
                "get": {
                    "operationId": "getRates",
                    "summary": "Events per second per pipe over the last seconds, in-flight events and source lag.",
                    "description": (
                        "Rates compare with the readings of earlier calls (within 5 s); the first call "
                        "answers `per_s: null`."
                    ),
                    "responses": {
                        "200": _json_response("The rates.", {"$ref": "#/components/schemas/Rates"}),
                        "401": _UNAUTHORIZED,
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
                "Definition": {
                    "type": "object",
                    "required": ["name", "file", "yaml", "pipe", "pipes_in_file"],
                    "properties": {
                        "name": {"type": "string"},
                        "file": {"type": "string"},
                        "yaml": {"type": ["string", "null"], "description": "The file's text."},
                        "pipe": {"type": ["object", "null"], "description": "This pipe, as written."},
                        "pipes_in_file": {"type": "integer"},
                        "error": {"type": "string"},
                    },
                },
                "Systems": {
                    "type": "object",
                    "required": ["systems", "pipes"],
                    "properties": {
                        "systems": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "kind", "name", "where"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "kind": {
                                        "type": "string",
                                        "description": "kafka_topic, redis_stream, redis_list, file, ... "
                                        "or connector (a node of one pipe's end).",
                                    },
                                    "name": {"type": "string"},
                                    "where": {"type": "string"},
                                },
                            },
                        },
                        "pipes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "state": {"type": "string", "enum": _STATES},
                                    "desired_state": {"type": "string", "enum": ["RUNNING", "STOPPED"]},
                                    **{
                                        end: {"type": "array", "items": {"type": "string"}}
                                        for end in ("sources", "targets", "enrichment", "dead_letter")
                                    },
                                },
                            },
                        },
                    },
                },
                "Rates": {
                    "type": "object",
                    "required": ["window_s", "pipes"],
                    "properties": {
                        "window_s": {"type": ["number", "null"], "description": "Seconds the rates cover."},
                        "pipes": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "properties": {
                                    "state": {"type": "string", "enum": _STATES},
                                    "per_s": {
                                        "type": ["object", "null"],
                                        "additionalProperties": {"type": "number"},
                                        "description": "received, filtered, dropped, delivered, failed, "
                                        "retried, dead_lettered: events per second.",
                                    },
                                    "in_flight": {"type": "integer"},
                                    "lag": {"type": ["integer", "null"]},
                                    "lag_by_partition": {
                                        "type": ["object", "null"],
                                        "additionalProperties": {"type": "integer"},
                                    },
                                },
                            },
                        },
                    },
                },
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
