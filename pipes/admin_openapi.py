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
    document["paths"].update(_console_paths())
    document["components"]["schemas"].update(_console_schemas())
    for item in document["paths"].values():
        for method, operation in item.items():
            operation["responses"]["403"] = _FORBIDDEN
            if method == "post":
                operation["responses"]["415"] = _NEEDS_JSON
                operation.setdefault("requestBody", _EMPTY_JSON_BODY)
    return document


_NDJSON = "application/x-ndjson"
_SELECTION = {
    "where": "An EventBridge event pattern over the dead-letter record (JSON text in a query).",
    "since": "Only records dead-lettered at or after this time: ISO 8601 or `now-1h`.",
    "limit": "At most this many records.",
}


def _json_body(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "description": description, "content": {"application/json": {"schema": schema}}}


def _failure_paths() -> dict[str, Any]:
    """Dead letters, redrive and replay (``pipes.admin_failures``)."""
    cannot = _json_response("The pipe has no dead letter, or its type cannot be read back.", _ERROR)
    system = _json_response("The dead letter's or the source's system failed (unreachable, refused).", _ERROR)
    query = [
        {"name": key, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
        for key, text in _SELECTION.items()
    ]
    redriven = {
        "name": "redriven",
        "in": "query",
        "required": False,
        "description": "`true`: also the records a redrive already sent again.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    }
    return {
        "/pipes/{name}/dead-letters": {
            "get": {
                "operationId": "summarizeDeadLetters",
                "summary": "What waits in the pipe's dead letter: count, oldest and newest, by stage and error type.",
                "parameters": [_NAME],
                "responses": {
                    "200": _json_response("The summary.", {"$ref": "#/components/schemas/DeadLetterSummary"}),
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "422": cannot,
                    "502": system,
                },
            }
        },
        "/pipes/{name}/dead-letters/records": {
            "get": {
                "operationId": "listDeadLetters",
                "summary": "The dead-letter records waiting (not redriven), oldest first, as JSON lines.",
                "description": (
                    "Each line is a dead-letter record as written (docs/delivery.md); a record that is "
                    'not a JSON object is `{"unreadable": TEXT, "position": P}`; an error while '
                    'reading ends the answer with `{"error": ...}`.'
                ),
                "parameters": [_NAME, *query, redriven],
                "responses": {
                    "200": {
                        "description": "JSON lines.",
                        "content": {_NDJSON: {"schema": {"type": "object"}}},
                    },
                    "400": _json_response("An invalid where, since or limit.", _ERROR),
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "422": cannot,
                    "502": system,
                },
            }
        },
        "/pipes/{name}/redrive": {
            "post": {
                "operationId": "redriveDeadLetters",
                "summary": "Send the selected dead letters through the pipe again.",
                "description": (
                    "Filter, enrichment, transform and target, with fresh connectors; the running pipe "
                    "is not touched. Progress is saved after each batch (a redrive stopped or broken "
                    "off resumes where it stopped); a record that fails again is dead-lettered anew "
                    'with `redrive_count`. The answer is JSON lines: `{"progress": ...}` after each '
                    'batch, `{"dry_run": ...}` per record in a dry run, then `{"summary": ...}` '
                    'or `{"error": ...}`. A client that goes away stops the redrive after the batch '
                    "in hand."
                ),
                "parameters": [_NAME],
                "requestBody": _json_body("What to send again.", {"$ref": "#/components/schemas/Redrive"}),
                "responses": {
                    "200": {
                        "description": "JSON lines of progress, then the summary.",
                        "content": {_NDJSON: {"schema": {"$ref": "#/components/schemas/RedriveLine"}}},
                    },
                    "400": _json_response("An invalid where, since or limit.", _ERROR),
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "409": _json_response(
                        "A redrive of this pipe is under way, or the daemon is stopping.", _ERROR
                    ),
                    "422": cannot,
                },
            }
        },
        "/pipes/{name}/replay": {
            "post": {
                "operationId": "replayPipe",
                "summary": "Move the pipe back (or forward) to a time or positions, then run it again.",
                "description": (
                    "The pipe stops (drained and committed), its positions move, and it starts again if "
                    "its desired state is RUNNING. A move forward, past events never settled, needs "
                    "`force` (409 without it; nothing moves). With `to`, the pipe is stopped once "
                    "every partition settled that far."
                ),
                "parameters": [_NAME],
                "requestBody": _json_body("Where to move.", {"$ref": "#/components/schemas/Replay"}),
                "responses": {
                    "200": _json_response("Moved.", {"$ref": "#/components/schemas/ReplayResult"}),
                    "400": _json_response("An invalid from or to.", _ERROR),
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "409": _json_response(
                        "The move would skip unsettled events (give force), or the daemon is stopping; "
                        "`partitions` says where each would have gone.",
                        {"$ref": "#/components/schemas/ReplayRefused"},
                    ),
                    "422": _json_response("The source cannot replay, or not to that point.", _ERROR),
                    "502": system,
                },
            }
        },
    }


def _failure_schemas() -> dict[str, Any]:
    position = {"type": ["integer", "string", "null"]}
    move = {
        "type": "object",
        "required": ["partition", "old", "new"],
        "properties": {
            "partition": {"type": "string"},
            "old": {**position, "description": "The last settled position before (null: none)."},
            "new": {**position, "description": "The last settled position now; the pipe goes on after it."},
            "events": {
                "type": ["integer", "null"],
                "description": "Events delivered again (negative: skipped), where the source can tell.",
            },
            "until": {**position, "description": "With `to`: the last position to deliver."},
            "forward": {"type": "boolean"},
        },
    }
    counts = {
        key: {"type": "integer"}
        for key in ("selected", "done", "delivered", "filtered", "dropped", "failed_again", "unreadable")
    }
    return {
        "DeadLetterSummary": {
            "type": "object",
            "required": ["name", "type", "count"],
            "properties": {
                "name": {"type": "string"},
                "type": {"type": "string", "description": "The dead letter's connector type."},
                "count": {"type": "integer", "description": "Records waiting (not redriven)."},
                "redriven": {"type": "integer", "description": "Records a redrive already sent again."},
                "unreadable": {"type": "integer"},
                "oldest": {"type": ["string", "null"]},
                "newest": {"type": ["string", "null"]},
                "by_stage": {"type": "object", "additionalProperties": {"type": "integer"}},
                "by_error": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        "Redrive": {
            "type": "object",
            "properties": {
                "where": {"description": _SELECTION["where"], "type": ["object", "string", "null"]},
                "since": {"description": _SELECTION["since"], "type": ["string", "null"]},
                "limit": {"description": _SELECTION["limit"], "type": ["integer", "null"], "minimum": 1},
                "dry_run": {
                    "type": "boolean",
                    "description": "Report per stage what would happen; write nothing.",
                },
            },
        },
        "RedriveLine": {
            "type": "object",
            "properties": {
                "progress": {"type": "object", "properties": counts},
                "summary": {"type": "object", "properties": counts},
                "dry_run": {"type": "object", "description": "One record: partition, position, stages."},
                "error": {"type": "string"},
            },
        },
        "Replay": {
            "type": "object",
            "required": ["from"],
            "properties": {
                "from": {
                    "type": "string",
                    "description": "A time (ISO 8601, `now-1h`), `beginning`, a position, or PARTITION=POSITION,...",
                },
                "to": {
                    "type": ["string", "null"],
                    "description": "Stop the pipe once it settled up to here.",
                },
                "force": {"type": "boolean", "description": "Move forward even past unsettled events."},
            },
        },
        "ReplayResult": {
            "type": "object",
            "required": ["name", "partitions"],
            "properties": {
                "name": {"type": "string"},
                "state": {"type": "string", "enum": _STATES},
                "desired_state": {"type": "string", "enum": ["RUNNING", "STOPPED"]},
                "partitions": {"type": "array", "items": move},
                "stops_at_to": {"type": "boolean"},
            },
        },
        "ReplayRefused": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}, "partitions": {"type": "array", "items": move}},
        },
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
            **_failure_paths(),
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
                **_failure_schemas(),
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


def _json_object_body(description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
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
                "requestBody": _json_object_body("The token.", {"token": {"type": "string"}}, ["token"]),
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
                "requestBody": _json_object_body(
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
                "requestBody": _json_object_body(
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
                "requestBody": _json_object_body("The YAML.", yaml_body, ["yaml"]),
                "responses": {"200": checked, "401": _UNAUTHORIZED},
            }
        },
        "/ui/api/save": {
            "post": {
                "operationId": "consoleSave",
                "summary": "Check the YAML, write it into the daemon's pipe folder, reload (only with --ui-write).",
                "requestBody": _json_object_body("The YAML.", yaml_body, ["yaml"]),
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
