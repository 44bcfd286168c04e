"""What the composer asks of the server: check YAML as `pipes validate` does, secrets as ${VAR},
try a filter and render a transform on a sample event, and read a file as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipes.console.composer import Problem, check_text, render_transform, try_filter, write_atomically
from pipes.console.written import MASK, read_written

GOOD = """\
# comment
name: carts
source:
  type: redis_stream
  url: redis://localhost:6379/0
  stream: shop.cart
  group: carts
target:
  type: kafka
  bootstrap_servers: localhost:9092
  topic: carts
"""


def test_valid_yaml_gives_its_pipes_and_no_problems() -> None:
    checked = check_text(GOOD, "configs/carts.yaml", env={})
    assert checked.ok and [d.name for d in checked.definitions] == ["carts"]
    assert checked.as_dict() == {"ok": True, "pipes": ["carts"], "errors": [], "variables": []}


def test_an_invalid_value_is_a_problem_at_its_key_with_line_and_column() -> None:
    text = GOOD.replace("  group: carts\n", "  group: carts\n  count: lots\n")
    checked = check_text(text, "configs/carts.yaml", env={})
    assert not checked.ok and checked.definitions == []
    [problem] = checked.problems
    assert (problem.line, problem.column, problem.path) == (8, 3, "source.count")
    assert "integer" in problem.message
    assert problem.text.startswith("configs/carts.yaml:8:3: source.count: ")


def test_problem_lines_without_a_path_keep_the_whole_message() -> None:
    assert Problem.parse("f.yaml:1:1: the file is empty: write one pipe") == Problem(
        1, 1, "", "the file is empty: write one pipe", "f.yaml:1:1: the file is empty: write one pipe"
    )
    assert Problem.parse("no location at all").message == "no location at all"


def test_a_secret_written_plainly_is_refused_at_its_key_and_a_reference_is_listed_as_a_variable() -> None:
    plain = GOOD.replace("  group: carts\n", "  group: carts\n  password: hunter2\n")
    checked = check_text(plain, "c.yaml", env={})
    assert [(p.path, p.line) for p in checked.problems] == [("source.password", 8)]
    assert "plain value" in checked.problems[0].message and "hunter2" not in checked.problems[0].text
    referenced = GOOD.replace("  group: carts\n", "  group: carts\n  password: ${CART_PASSWORD}\n")
    unset = check_text(referenced, "c.yaml", env={})
    assert [p.path for p in unset.problems] == ["source.password"]  # pipes.config: the variable is not set
    assert unset.variables == [
        {
            "name": "CART_PASSWORD",
            "paths": ["source.password"],
            "secret": True,
            "set": False,
            "has_default": False,
        }
    ]
    ready = check_text(referenced, "c.yaml", env={"CART_PASSWORD": "x"})
    assert ready.ok and ready.variables[0]["set"] is True


def test_a_password_inside_a_url_must_be_a_reference_too() -> None:
    plain = GOOD.replace("redis://localhost", "redis://:hunter2@localhost")
    assert [p.path for p in check_text(plain, "c.yaml", env={}).problems] == ["source.url"]
    referenced = GOOD.replace("redis://localhost", "redis://:${REDIS_PASSWORD}@localhost")
    checked = check_text(referenced, "c.yaml", env={"REDIS_PASSWORD": "x"})
    assert checked.ok
    assert checked.variables[0]["name"] == "REDIS_PASSWORD" and not checked.variables[0]["secret"]


def test_a_name_another_file_holds_is_refused_at_the_name() -> None:
    checked = check_text(GOOD, "configs/new.yaml", env={}, taken={"carts": "configs/old.yaml"})
    assert [(p.path, p.line) for p in checked.problems] == [("name", 2)]
    assert "configs/old.yaml" in checked.problems[0].message
    same_file = check_text(GOOD, "configs/old.yaml", env={}, taken={"carts": "configs/old.yaml"})
    assert same_file.ok  # editing the file that holds it


ORDER = {"body": {"detail-type": "OrderPlaced", "detail": {"total": 142.5}}}


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ([{"body": {"detail-type": ["OrderPlaced"]}}], {"match": True}),
        ([{"body": {"detail": {"total": [{"numeric": [">", 200]}]}}}], {"match": False}),
        (
            {
                "patterns": [{"body": {"detail-type": ["OrderPlaced"]}}],
                "jmespath": "body.detail.total > `100`",
            },
            {"match": True},
        ),
        ({"jmespath": "body.detail.total > `200`"}, {"match": False}),
    ],
)
def test_a_filter_as_written_is_tried_on_a_sample(written: object, expected: dict[str, bool]) -> None:
    assert try_filter(written, ORDER) == expected


def test_an_invalid_filter_says_where() -> None:
    found = try_filter([{"body": {"total": [{"numeric": [">"]}]}}], ORDER)
    assert found["path"].startswith("patterns.0") and "numeric" in found["error"]
    assert "jmespath" in try_filter({"jmespath": "body.["}, ORDER)["error"]
    assert "JSON object" in try_filter([{"a": ["b"]}], [1, 2])["error"]


def test_a_transform_is_rendered_from_the_sample() -> None:
    variables = {"aws.pipes.pipe-name": "carts"}
    template = {"template": '{"order": <$.body.detail.total>, "pipe": <aws.pipes.pipe-name>}'}
    assert render_transform(template, ORDER, variables) == {
        "output": '{"order":142.5,"pipe":"carts"}',
        "text": True,
    }
    assert render_transform({"jmespath": "body.detail"}, ORDER, variables) == {
        "output": {"total": 142.5},
        "text": False,
    }
    assert "exactly one" in render_transform({}, ORDER, variables)["error"]
    assert "template" in render_transform({"template": "<$.body"}, ORDER, variables)["error"]


def test_files_are_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "pipes" / "carts.yaml"
    write_atomically(target, GOOD)
    write_atomically(target, GOOD + "# again\n")
    assert target.read_text() == GOOD + "# again\n"
    assert [p.name for p in target.parent.iterdir()] == ["carts.yaml"]  # no temporary file left


def test_a_file_as_written_masks_plain_secrets_and_keeps_references() -> None:
    text = GOOD.replace("  group: carts\n", "  group: carts\n  password: 'hunter2'\n").replace(
        "redis://localhost", "redis://user:pa55@localhost"
    )
    written = read_written(text)
    assert "hunter2" not in written.text and "pa55" not in written.text
    assert f'password: "{MASK}"' in written.text and f"redis://user:{MASK}@localhost" in written.text
    assert written.text.startswith("# comment\n")  # the rest stays as written
    assert written.pipes["carts"]["source"]["password"] == MASK
    kept = read_written(GOOD.replace("  group: carts\n", "  group: carts\n  password: ${P}\n"))
    assert kept.pipes["carts"]["source"]["password"] == "${P}"
    listed = read_written(
        "pipes:\n  - name: a\n    source: {type: generator}\n    target: {type: stdout}\n  - name: b\n"
    )
    assert sorted(listed.pipes) == ["a", "b"]


WEBHOOK = """\
name: hooks
source:
  type: webhook
  listen: 127.0.0.1:18001
  paths: [/in]
  auth:
    kind: bearer
    tokens:
      - ${HOOK_TOKEN}
      - TOKEN_PLACE
target:
  type: http
  url: http://127.0.0.1:9/x
  headers:
    Authorization: HEADER_PLACE
    Accept: application/json
"""


def test_each_item_of_a_list_of_secrets_and_a_credential_header_must_be_a_reference() -> None:
    env = {"HOOK_TOKEN": "x", "HOOK_TOKEN_2": "y", "API_TOKEN": "z"}
    plain = WEBHOOK.replace("TOKEN_PLACE", "plain-token").replace("HEADER_PLACE", "Bearer abc123")
    checked = check_text(plain, "h.yaml", env=env)
    assert [(p.path, p.line) for p in checked.problems] == [
        ("source.auth.tokens[1]", 10),
        ("target.headers.Authorization", 15),
    ]
    assert not any("plain-token" in p.text or "abc123" in p.text for p in checked.problems)
    referenced = WEBHOOK.replace("TOKEN_PLACE", "${HOOK_TOKEN_2}").replace(
        "HEADER_PLACE", "Bearer ${API_TOKEN}"
    )
    ready = check_text(referenced, "h.yaml", env=env)
    assert ready.ok, ready.problems
    assert {v["name"]: (v["paths"], v["secret"]) for v in ready.variables} == {
        "HOOK_TOKEN": (["source.auth.tokens[0]"], True),
        "HOOK_TOKEN_2": (["source.auth.tokens[1]"], True),
        "API_TOKEN": (["target.headers.Authorization"], True),
    }


def test_a_file_as_written_masks_lists_of_secrets_and_credential_headers() -> None:
    text = WEBHOOK.replace("TOKEN_PLACE", "plain-token").replace("HEADER_PLACE", "Bearer abc123")
    written = read_written(text)
    assert "plain-token" not in written.text and "abc123" not in written.text
    hook = written.pipes["hooks"]
    assert hook["source"]["auth"]["tokens"] == ["${HOOK_TOKEN}", MASK]
    assert hook["target"]["headers"] == {"Authorization": MASK, "Accept": "application/json"}
    kept = read_written(WEBHOOK.replace("HEADER_PLACE", "Bearer ${API_TOKEN}"))
    assert kept.pipes["hooks"]["target"]["headers"]["Authorization"] == "Bearer ${API_TOKEN}"
