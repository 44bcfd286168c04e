"""Input templates, case by case, from what the AWS Pipes documentation says they do.

Each case renders with the fast renderer and with the reference text renderer,
which must agree to the character.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from pipes.templates import (
    MAX_TEMPLATE_LENGTH,
    RESERVED_VARIABLES,
    InputTemplate,
    TemplateError,
    reserved_variables,
)

SQS = {
    "messageId": "m-1",
    "attributes": {"SenderId": "AIDA123"},
    "body": {"orderId": "o-7", "total": 42, "items": [{"sku": "A"}, {"sku": "B"}]},
}
EC2 = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {"instance-id": "i-0123456789", "state": "RUNNING"},
}
KAFKA = {
    "topic": "mytopic",
    "partition": 0,
    "offset": 15,
    "key": "dTE=",
    "value": {"user": "u1", "evt": "login"},
}
TRICKY = {
    "quote": 'say "hi"',
    "backslash": "C:\\dir\\",
    "newline": "one\ntwo\r\tthree",
    "control": "bell\x07nul\x00esc\x1b",
    "unicode": "naïve ☃ 日本 \U0001f600",
    "separators": "a\u2028b\u2029c",
    "markup": "</script><$.not-a-path>",
    "flag": True,
    "nothing": None,
    "ratio": 0.5,
    "big": 2**70,
    "nested": {"k": 'v "q"', "list": [1, "two", None, False]},
    "empty": {"obj": {}, "arr": [], "str": ""},
}
PIPE = reserved_variables("orders", "kafka", "redis_stream", None)


def render(template: str, record: Any, variables: dict[str, Any] | None = None) -> str:
    fast = InputTemplate(template).render(record, variables)
    text = InputTemplate(template, fast=False).render(record, variables)
    assert fast == text, "the fast renderer must agree with the text renderer"
    return fast


# (case id, template, record, variables, exact output)
CASES: list[tuple[str, str, Any, dict[str, Any] | None, str]] = [
    # aws-pipes.md section 5, worked example 1 (SQS JSON body, target template).
    (
        "worked-1",
        '{"id": <$.body.orderId>, "amount": <$.body.total>, "first": <$.body.items[0].sku>, '
        '"note": "order <$.body.orderId> in", "pipe": <aws.pipes.pipe-name>}',
        SQS,
        PIPE,
        '{"id":"o-7","amount":42,"first":"A","note":"order o-7 in","pipe":"orders"}',
    ),
    # Worked example 2: an object inside a string loses its quotes...
    (
        "worked-2-json-string",
        '"Body is <$.body>"',
        SQS,
        None,
        '"Body is {orderId:o-7,total:42,items:[{sku:A},{sku:B}]}"',
    ),
    (
        "worked-2-plain",
        "Body is <$.body>",
        SQS,
        None,
        "Body is {orderId:o-7,total:42,items:[{sku:A},{sku:B}]}",
    ),
    # ...and the fix is to use it as a JSON value.
    (
        "worked-2-fix",
        '{"body": <$.body>}',
        SQS,
        None,
        '{"body":{"orderId":"o-7","total":42,"items":[{"sku":"A"},{"sku":"B"}]}}',
    ),
    # Worked example 3 (Kinesis; data already decoded by the source).
    (
        "worked-3-wrapped",
        '{"data": <$.data>}',
        {"data": {"City": "Seattle"}},
        None,
        '{"data":{"City":"Seattle"}}',
    ),
    # AWS writes the bare body as "{City: Seattle}" (the source text with its quotes
    # removed); we write the decoded value quote-stripped and compact (see the docs).
    ("worked-3-bare", "<$.data>", {"data": {"City": "Seattle"}}, None, "{City:Seattle}"),
    # Worked example 4 (Kafka value decoded, key not JSON so left as it came).
    (
        "worked-4",
        '{"who": <$.value.user>, "topic": <$.topic>, "offset": <$.offset>, "rawKey": <$.key>}',
        KAFKA,
        None,
        '{"who":"u1","topic":"mytopic","offset":15,"rawKey":"dTE="}',
    ),
    # Worked example 5 (DynamoDB typed JSON is addressed explicitly).
    (
        "worked-5",
        '{"subjectId": <$.dynamodb.NewImage.subjectId.S>}',
        {"dynamodb": {"NewImage": {"subjectId": {"S": "s-1"}, "n": {"N": "3"}}}},
        None,
        '{"subjectId":"s-1"}',
    ),
    # The AWS page's sample templates on an SQS record.
    ("aws-static-plain", "Hello, sender", SQS, None, "Hello, sender"),
    ("aws-static-json-string", '"Hello, sender"', SQS, None, '"Hello, sender"'),
    ("aws-json-path", "<$.attributes.SenderId>", SQS, None, "AIDA123"),
    ("aws-dynamic-string", '"Hello, <$.attributes.SenderId>"', SQS, None, '"Hello, AIDA123"'),
    ("aws-dynamic-plain", "Hello, <$.attributes.SenderId>", SQS, None, "Hello, AIDA123"),
    (
        "aws-static-json",
        '{\n  "key1": "value1",\n  "key2": "value2",\n  "key3": "value3"\n}',
        SQS,
        None,
        '{"key1":"value1","key2":"value2","key3":"value3"}',
    ),
    (
        "aws-dynamic-json",
        '{\n  "key1": "value1",\n  "key2": <$.body.orderId>,\n  "d": <aws.pipes.event.ingestion-time>\n}',
        SQS,
        {"aws.pipes.event.ingestion-time": "2024-05-01T00:00:00.050Z"},
        '{"key1":"value1","key2":"o-7","d":"2024-05-01T00:00:00.050Z"}',
    ),
    (
        "aws-array-index",
        '{"key2": <$.body.Records[3]>}',
        {"body": {"Records": ["r0", "r1", "r2", {"r": 3}]}},
        None,
        '{"key2":{"r":3}}',
    ),
    # The event-bus input-transformer page's table, with Pipes' inline paths.
    (
        "bus-simple-string",
        '"instance <$.detail.instance-id> is in <$.detail.state>"',
        EC2,
        None,
        '"instance i-0123456789 is in RUNNING"',
    ),
    (
        "bus-escaped-quotes",
        '"instance \\"<$.detail.instance-id>\\" is in <$.detail.state>"',
        EC2,
        None,
        '"instance \\"i-0123456789\\" is in RUNNING"',
    ),
    (
        "bus-json-strings-and-values",
        '{"instance" : <$.detail.instance-id>, "state": "<$.detail.state>", '
        '"instanceStatus": "instance \\"<$.detail.instance-id>\\" is in <$.detail.state>"}',
        EC2,
        None,
        '{"instance":"i-0123456789","state":"RUNNING",'
        '"instanceStatus":"instance \\"i-0123456789\\" is in RUNNING"}',
    ),
    (
        "bus-mix-static",
        '{\n  "instance" : <$.detail.instance-id>,\n  "state": [ 9, <$.detail.state>, true ],\n'
        '  "Transformed" : "Yes"\n}',
        EC2,
        None,
        '{"instance":"i-0123456789","state":[9,"RUNNING",true],"Transformed":"Yes"}',
    ),
    (
        "bus-reserved-in-string",
        '"<aws.pipes.pipe-name> triggered"',
        EC2,
        {"aws.pipes.pipe-name": "example"},
        '"example triggered"',
    ),
    # Quoting: quotes around a placeholder are allowed; they make the value text.
    ("quoted-string", '{"id": "<$.body.orderId>"}', SQS, None, '{"id":"o-7"}'),
    ("quoted-number", '{"n": "<$.body.total>"}', SQS, None, '{"n":"42"}'),
    ("bare-bool", '{"b": <$.flag>}', TRICKY, None, '{"b":true}'),
    ("quoted-bool", '{"b": "<$.flag>"}', TRICKY, None, '{"b":"true"}'),
    ("bare-null", '{"z": <$.nothing>}', TRICKY, None, '{"z":null}'),
    ("quoted-null", '{"z": "<$.nothing>"}', TRICKY, None, '{"z":"null"}'),
    ("bare-float", '{"r": <$.ratio>}', TRICKY, None, '{"r":0.5}'),
    ("bare-big-int", '{"b": <$.big>}', TRICKY, None, '{"b":1180591620717411303424}'),
    ("bare-array", "[<$.body.items>]", SQS, None, '[[{"sku":"A"},{"sku":"B"}]]'),
    ("empty-containers", '{"e": <$.empty>}', TRICKY, None, '{"e":{"obj":{},"arr":[],"str":""}}'),
    ("empty-containers-text", "e=<$.empty>", TRICKY, None, "e={obj:{},arr:[],str:}"),
    (
        "nested-text-form",
        '"n=<$.nested>"',
        TRICKY,
        None,
        '"n={k:v \\"q\\",list:[1,two,null,false]}"',
    ),
    # Escaping: a JSON template stays valid whatever the strings hold.
    ("escape-quote-value", '{"s": <$.quote>}', TRICKY, None, '{"s":"say \\"hi\\""}'),
    ("escape-quote-in-string", '{"s": "<$.quote>!"}', TRICKY, None, '{"s":"say \\"hi\\"!"}'),
    ("escape-backslash", '{"s": <$.backslash>}', TRICKY, None, '{"s":"C:\\\\dir\\\\"}'),
    ("escape-backslash-in-string", '["<$.backslash>"]', TRICKY, None, '["C:\\\\dir\\\\"]'),
    ("escape-newline", '{"s": <$.newline>}', TRICKY, None, '{"s":"one\\ntwo\\r\\tthree"}'),
    (
        "escape-control",
        '{"s": "<$.control>"}',
        TRICKY,
        None,
        '{"s":"bell\\u0007nul\\u0000esc\\u001b"}',
    ),
    ("unicode-kept", '{"s": <$.unicode>}', TRICKY, None, '{"s":"naïve ☃ 日本 \U0001f600"}'),
    ("line-separators-kept", '{"s": <$.separators>}', TRICKY, None, '{"s":"a\u2028b\u2029c"}'),
    # A value that looks like a placeholder is data, never parsed again.
    ("value-not-reparsed", '{"s": <$.markup>}', TRICKY, None, '{"s":"</script><$.not-a-path>"}'),
    # Plain text is never escaped.
    ("plain-quote", "said: <$.quote>", TRICKY, None, 'said: say "hi"'),
    ("plain-newline", "<$.newline>", TRICKY, None, "one\ntwo\r\tthree"),
    ("plain-number", "total=<$.body.total>", SQS, None, "total=42"),
    ("plain-keeps-whitespace", "  a\n\tb  <$.body.total>  ", SQS, None, "  a\n\tb  42  "),
    # JSON templates are minified, but text inside strings is kept as written.
    ("minified", '{ "a" : [ 1 , 2 ] ,\n "b" : " x  y " }', {}, None, '{"a":[1,2],"b":" x  y "}'),
    ("literal-escapes-kept", '{"a": "\\u00e9\\n\\/"}', {}, None, '{"a":"\\u00e9\\n\\/"}'),
    ("literal-number-kept", '{"a": 1e5, "b": -0.0, "c": 10}', {}, None, '{"a":1e5,"b":-0.0,"c":10}'),
    ("duplicate-keys-kept", '{"a": 1, "a": <$.body.total>}', SQS, None, '{"a":1,"a":42}'),
    ("placeholder-in-key", '{"<$.body.orderId>": <$.body.total>}', SQS, None, '{"o-7":42}'),
    ("top-level-array", "[<$.body.total>, <$.messageId>]", SQS, None, '[42,"m-1"]'),
    ("empty-template", "", SQS, None, ""),
    # Arrays, indexes, wildcards.
    ("index-1", '{"s": <$.body.items[1].sku>}', SQS, None, '{"s":"B"}'),
    ("index-out-of-range", '{"s": <$.body.items[5].sku>}', SQS, None, '{"s":null}'),
    ("index-on-object", '{"s": <$.body[0]>}', SQS, None, '{"s":null}'),
    ("index-on-string", '{"s": <$.messageId[0]>}', SQS, None, '{"s":null}'),
    ("wildcard", '{"skus": <$.body.items[*].sku>}', SQS, None, '{"skus":["A","B"]}'),
    ("wildcard-elements", '{"all": <$.body.items[*]>}', SQS, None, '{"all":[{"sku":"A"},{"sku":"B"}]}'),
    (
        "wildcard-nested-flattens",
        '{"q": <$.o[*].l[*]>}',
        {"o": [{"l": [1, 2]}, {"x": 0}, {"l": [3]}]},
        None,
        '{"q":[1,2,3]}',
    ),
    ("wildcard-object-values", '{"v": <$.o.*>}', {"o": {"a": 1, "b": [2]}}, None, '{"v":[1,[2]]}'),
    ("wildcard-bracket-object", '{"v": <$.o[*]>}', {"o": {"a": 1}}, None, '{"v":[1]}'),
    ("wildcard-no-match", '{"v": <$.missing[*].x>}', SQS, None, '{"v":[]}'),
    ("wildcard-in-string", '"skus <$.body.items[*].sku>"', SQS, None, '"skus [A,B]"'),
    ("wildcard-plain", "skus <$.body.items[*].sku>", SQS, None, "skus [A,B]"),
    (
        "names-with-dash-underscore-slash",
        "<$.a-b.c_d.e/f.9>",
        {"a-b": {"c_d": {"e/f": {"9": "ok"}}}},
        None,
        "ok",
    ),
    ("root", '{"all": <$>}', {"a": 1}, None, '{"all":{"a":1}}'),
    # Missing paths: no value. As a JSON value that is null (AWS leaves a gap).
    ("missing-value", '{"m": <$.body.nope>, "n": 1}', SQS, None, '{"m":null,"n":1}'),
    ("missing-through-string", '{"m": <$.messageId.x>}', SQS, None, '{"m":null}'),
    ("missing-through-number", '{"m": <$.body.total.x>}', SQS, None, '{"m":null}'),
    ("missing-through-null", '{"m": <$.nothing.x>}', TRICKY, None, '{"m":null}'),
    ("missing-in-string", '{"m": "a<$.body.nope>b"}', SQS, None, '{"m":"ab"}'),
    ("missing-plain", "a<$.body.nope>b", SQS, None, "ab"),
    ("missing-record-not-dict", '{"m": <$.a>}', ["not", "a", "dict"], None, '{"m":null}'),
    # Literal "<" that starts no placeholder is text.
    (
        "lt-plain",
        "a < b and <b>bold</b> <$5 <aws <$.body.total>",
        SQS,
        None,
        "a < b and <b>bold</b> <$5 <aws 42",
    ),
    (
        "lt-in-json-string",
        '{"cmp": "a < b <$.body.total>", "t": "<i>"}',
        SQS,
        None,
        '{"cmp":"a < b 42","t":"<i>"}',
    ),
    # A template that starts with a quote but is not one JSON string is text.
    ("quote-then-text", '"Hi" <$.messageId>', SQS, None, '"Hi" m-1'),
]


@pytest.mark.parametrize(
    ("template", "record", "variables", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_renders(template: str, record: Any, variables: dict[str, Any] | None, expected: str) -> None:
    assert render(template, record, variables) == expected


@pytest.mark.parametrize(
    ("template", "record", "variables", "expected"),
    [case[1:] for case in CASES if InputTemplate(case[1]).is_json],
    ids=[case[0] for case in CASES if InputTemplate(case[1]).is_json],
)
def test_json_templates_render_valid_json(
    template: str, record: Any, variables: dict[str, Any] | None, expected: str
) -> None:
    json.loads(render(template, record, variables))


def test_aws_doc_example_with_reserved_variables_and_original_event() -> None:
    template = (
        '{\n  "instance" : <$.detail.instance-id>,\n  "state": <$.detail.state>,\n'
        '  "pipeArn" : <aws.pipes.pipe-arn>,\n  "pipeName" : <aws.pipes.pipe-name>,\n'
        '  "originalEvent" : <aws.pipes.event.json>\n}'
    )
    variables = reserved_variables("example", "kafka", "stdout", None)
    out = render(template, EC2, variables)
    assert out == (
        '{"instance":"i-0123456789","state":"RUNNING",'
        '"pipeArn":"arn:pipes:local:pipe/example","pipeName":"example",'
        f'"originalEvent":{orjson.dumps(EC2).decode()}}}'
    )


def test_every_reserved_variable() -> None:
    variables = {
        **reserved_variables("p1", "kafka", "redis_stream", "python"),
        "aws.pipes.event.ingestion-time": "2024-05-01T00:00:00.050Z",
    }
    template = "{" + ", ".join(f'"{n}": <{n}>' for n in sorted(RESERVED_VARIABLES)) + "}"
    assert json.loads(render(template, {"a": 1}, variables)) == {
        "aws.pipes.enrichment-arn": "arn:pipes:local:python:p1/enrichment",
        "aws.pipes.event": {"a": 1},
        "aws.pipes.event.ingestion-time": "2024-05-01T00:00:00.050Z",
        "aws.pipes.event.json": {"a": 1},
        "aws.pipes.pipe-arn": "arn:pipes:local:pipe/p1",
        "aws.pipes.pipe-name": "p1",
        "aws.pipes.source-arn": "arn:pipes:local:kafka:p1/source",
        "aws.pipes.target-arn": "arn:pipes:local:redis_stream:p1/target",
    }


def test_reserved_variables_without_enrichment_and_without_variables() -> None:
    assert "aws.pipes.enrichment-arn" not in reserved_variables("p", "a", "b", None)
    template = '{"e": <aws.pipes.enrichment-arn>, "n": "<aws.pipes.pipe-name>", "ev": <aws.pipes.event>}'
    assert render(template, {"x": 1}, reserved_variables("p", "a", "b", None)) == (
        '{"e":null,"n":"p","ev":{"x":1}}'
    )
    assert render(template, {"x": 1}) == '{"e":null,"n":"","ev":{"x":1}}'


def test_event_variables_come_from_variables_when_given() -> None:
    variables = {"aws.pipes.event": "raw text", "aws.pipes.event.json": {"decoded": True}}
    template = '{"e": <aws.pipes.event>, "j": <aws.pipes.event.json>, "s": "<aws.pipes.event>"}'
    assert render(template, {"record": 1}, variables) == (
        '{"e":"raw text","j":{"decoded":true},"s":"raw text"}'
    )


def test_event_in_text_is_quote_stripped() -> None:
    assert render("got <aws.pipes.event>", {"a": "b", "n": [1]}) == "got {a:b,n:[1]}"


def test_event_json_alone_is_the_record_as_json() -> None:
    # A common AWS idiom (the whole payload is the event), allowed as the only content.
    assert render("<aws.pipes.event.json>", SQS) == orjson.dumps(SQS).decode()
    assert render(" <aws.pipes.event.json>\n", {"a": 1}) == ' {"a":1}\n'


def test_render_never_reparses_the_template() -> None:
    template = InputTemplate('{"a": <$.x>}')
    assert template.text == '{"a": <$.x>}'
    assert template.is_json
    assert [template.render({"x": i}) for i in range(3)] == ['{"a":0}', '{"a":1}', '{"a":2}']
    assert not InputTemplate("x <$.x>").is_json


def test_values_orjson_cannot_write_fall_back_to_valid_json() -> None:
    record = {"v": {1: "int key", "big": 2**80, "t": (1, 2)}}
    out = render('{"v": <$.v>, "s": "<$.v>"}', record)
    assert json.loads(out) == {
        "v": {"1": "int key", "big": 2**80, "t": [1, 2]},
        "s": "{1:int key,big:1208925819614629174706176,t:[1,2]}",
    }


def test_max_length_is_enforced() -> None:
    at_limit = '"' + "x" * (MAX_TEMPLATE_LENGTH - 2) + '"'
    assert InputTemplate(at_limit).render({}) == at_limit
    with pytest.raises(TemplateError, match="8193 characters; the limit is 8192") as info:
        InputTemplate(at_limit + " ")
    assert info.value.offset == MAX_TEMPLATE_LENGTH


def test_deep_nesting_renders() -> None:
    deep = '{"a":' * 1300 + "[<$.x>]" + "}" * 1300
    assert render(deep, {"x": 1}) == deep.replace("<$.x>", "1")


# (template, offset, what the message says)
INVALID: list[tuple[str, int, str]] = [
    ("<$.a..b>", 5, "expected a field name after '.'"),
    ("<$.a.>", 5, "expected a field name after '.'"),
    ("<$.a[x]>", 4, "array index in $.a[x] must be [number] or [*]"),
    ("<$.a[-1]>", 4, "must be [number] or [*]"),
    ("<$.a[1:2]>", 4, "must be [number] or [*]"),
    ("<$[0]>", 2, "must start with $.name"),
    ("<$.a?b>", 4, "unexpected '?'"),
    ("<$.a['b']>", 4, "must be [number] or [*]"),
    ('{"a": <$.a', 6, "placeholder <$.a is not closed"),
    ("x <$.a b>", 2, "placeholder <$.a is not closed"),
    ("<aws.pipes.pipe_name>", 0, "unknown reserved variable <aws.pipes.pipe_name>"),
    ("hi <aws.pipes.nope>", 3, "known: <aws.pipes.enrichment-arn>"),
    ("<aws.events.rule-name>", 0, "event-bus rule variable"),
    ("x <aws.pipes.event.json>", 2, "may only stand as a JSON value"),
    ('{"a": "<aws.pipes.event.json>"}', 7, "may only stand as a JSON value"),
    ('"<aws.pipes.event.json>"', 1, "may only stand as a JSON value"),
    ('{"a": 1,}', 7, "not valid JSON"),
    ('{\n  "key1": "value1"\n  "key2": <$.body.key>\n}', 23, "Expecting ',' delimiter"),
    ('{"a": 1 <$.b>}', 8, "<$.b> cannot stand here in JSON"),
    ("{<$.k>: 1}", 1, "<$.k> cannot stand here in JSON"),
    ('{"a": <$.b><$.c>}', 11, "<$.c> cannot stand here in JSON"),
    ('{"a": -<$.b>}', 6, "not valid JSON (Expecting value)"),
    ('{"a": NaN}', 6, "NaN is not JSON"),
    ('{"a": "x\ny"}', 8, "not valid JSON"),
    ('{"a": "\\<$.b>"}', 7, "not valid JSON"),
    ("{name} is <$.name>", 1, "a template that starts with { must be JSON"),
    ("[1, 2", 5, "not valid JSON"),
]


@pytest.mark.parametrize(("template", "offset", "message"), INVALID)
def test_invalid_templates(template: str, offset: int, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        InputTemplate(template)
    assert info.value.offset == offset
    assert message in str(info.value)
    assert str(info.value).startswith(f"invalid input template at offset {offset}: ")
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)
