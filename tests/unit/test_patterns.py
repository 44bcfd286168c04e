"""EventBridge event patterns: one table of cases per operator, written from the AWS documentation.

Each case is (pattern, event, expected). Where AWS documents a subtlety the case id says so;
docs/filtering.md explains each rule.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipes.patterns import (
    MAX_PATTERN_CHARS,
    EventFilter,
    PatternError,
)


def matches(pattern: Any, event: Any) -> bool:
    return EventFilter.compile([pattern]).matches(event)


def case(id: str, pattern: Any, event: Any, expected: bool) -> Any:
    return pytest.param(pattern, event, expected, id=id)


EXACT = [
    case("string equal", {"source": ["aws.ec2"]}, {"source": "aws.ec2"}, True),
    case("string differs", {"source": ["aws.ec2"]}, {"source": "aws.s3"}, False),
    case("strings are case sensitive", {"source": ["aws.ec2"]}, {"source": "AWS.EC2"}, False),
    case("no string normalisation", {"source": ["aws.ec2"]}, {"source": "aws.ec2 "}, False),
    case("one of several values", {"source": ["aws.ec2", "aws.fargate"]}, {"source": "aws.fargate"}, True),
    case("none of several values", {"source": ["aws.ec2", "aws.fargate"]}, {"source": "aws.s3"}, False),
    case("string 5 is not number 5", {"n": ["5"]}, {"n": 5}, False),
    case("number 5 is not string 5", {"n": [5]}, {"n": "5"}, False),
    case("number equal", {"n": [5]}, {"n": 5}, True),
    case("number by value 300 = 300.0", {"n": [300]}, {"n": 300.0}, True),
    case("number by value 3.0e2 = 300", {"n": [3.0e2]}, json.loads('{"n": 300}'), True),
    case("number differs", {"n": [5]}, {"n": 6}, False),
    case("true is not 1", {"b": [True]}, {"b": 1}, False),
    case("1 is not true", {"b": [1]}, {"b": True}, False),
    case("0 is not false", {"b": [0]}, {"b": False}, False),
    case("true matches true", {"b": [True]}, {"b": True}, True),
    case("false matches false", {"b": [False]}, {"b": False}, True),
    case("true is not the string", {"b": [True]}, {"b": "true"}, False),
    case("null matches null", {"r": [None]}, {"r": None}, True),
    case("null does not match a missing field", {"r": [None]}, {}, False),
    case("null does not match empty string", {"r": [None]}, {"r": ""}, False),
    case("empty string matches empty string", {"r": [""]}, {"r": ""}, True),
    case("empty string does not match null", {"r": [""]}, {"r": None}, False),
    case("missing field", {"source": ["aws.ec2"]}, {"other": "aws.ec2"}, False),
    case("other fields are ignored", {"a": ["x"]}, {"a": "x", "b": "y", "c": {"d": 1}}, True),
    case("several fields AND: all match", {"a": ["x"], "b": ["y"]}, {"a": "x", "b": "y"}, True),
    case("several fields AND: one differs", {"a": ["x"], "b": ["y"]}, {"a": "x", "b": "z"}, False),
    case("nested object", {"detail": {"state": ["running"]}}, {"detail": {"state": "running"}}, True),
    case(
        "nested object differs", {"detail": {"state": ["running"]}}, {"detail": {"state": "stopped"}}, False
    ),
    case("nesting must be the same", {"detail": {"state": ["running"]}}, {"state": "running"}, False),
    case("pattern leaf vs event object", {"detail": ["x"]}, {"detail": {"x": 1}}, False),
    case("pattern object vs event scalar", {"detail": {"x": [1]}}, {"detail": "x"}, False),
    case("dotted key is not a path", {"detail.state": ["running"]}, {"detail": {"state": "running"}}, False),
    case("key containing a dot", {"a.b": ["x"]}, {"a.b": "x"}, True),
    case("record that is not an object", {"a": ["x"]}, "a", False),
    case("record that is None", {"a": ["x"]}, None, False),
]

ARRAYS = [
    case("any element of an event array", {"resources": ["arn:b"]}, {"resources": ["arn:a", "arn:b"]}, True),
    case("no element of an event array", {"resources": ["arn:c"]}, {"resources": ["arn:a", "arn:b"]}, False),
    case("array of numbers", {"n": [3]}, {"n": [1, 2, 3]}, True),
    case("nested arrays are flattened", {"n": [3]}, {"n": [[1], [2, [3]]]}, True),
    case("empty event array matches no value", {"n": [3]}, {"n": []}, False),
    case("numeric on an array", {"n": [{"numeric": [">", 10]}]}, {"n": [1, 20]}, True),
    case(
        "array of objects: one element matches",
        {"e": {"first": ["Anna"]}},
        {"e": [{"first": "John"}, {"first": "Anna"}]},
        True,
    ),
    case(
        "array of objects: no element matches",
        {"e": {"first": ["Bob"]}},
        {"e": [{"first": "John"}, {"first": "Anna"}]},
        False,
    ),
    case(
        "array of objects: fields must come from one element",
        {"e": {"first": ["Anna"], "last": ["Jones"]}},
        {"e": [{"first": "Anna", "last": "Smith"}, {"first": "Peter", "last": "Jones"}]},
        False,
    ),
    case(
        "array of objects: both fields in one element",
        {"e": {"first": ["Anna"], "last": ["Smith"]}},
        {"e": [{"first": "John", "last": "Doe"}, {"first": "Anna", "last": "Smith"}]},
        True,
    ),
    case(
        "array of arrays of objects",
        {"e": {"first": ["Peter"]}},
        {"e": [[{"first": "Anna"}], [{"first": "Peter"}]]},
        True,
    ),
    case("array mixing scalars and objects", {"e": {"k": [1]}}, {"e": ["x", {"k": 1}]}, True),
    case("scalars of a mixed array", {"e": ["x"]}, {"e": ["x", {"k": 1}]}, True),
    case("record that is an array of objects", {"a": ["x"]}, [{"a": "y"}, {"a": "x"}], True),
]

PREFIX_SUFFIX = [
    case("prefix", {"time": [{"prefix": "2017-10-02"}]}, {"time": "2017-10-02T18:43:48Z"}, True),
    case("prefix differs", {"time": [{"prefix": "2017-10-02"}]}, {"time": "2017-10-03T18:43:48Z"}, False),
    case("prefix is case sensitive", {"r": [{"prefix": "us-"}]}, {"r": "US-east-1"}, False),
    case("prefix only on strings", {"n": [{"prefix": "12"}]}, {"n": 123}, False),
    case("empty prefix matches any string", {"s": [{"prefix": ""}]}, {"s": "x"}, True),
    case(
        "prefix ignore case",
        {"s": [{"prefix": {"equals-ignore-case": "EventB"}}]},
        {"s": "eventbridge"},
        True,
    ),
    case(
        "prefix ignore case differs",
        {"s": [{"prefix": {"equals-ignore-case": "EventB"}}]},
        {"s": "eventX"},
        False,
    ),
    case("suffix", {"f": [{"suffix": ".png"}]}, {"f": "image.png"}, True),
    case("suffix differs", {"f": [{"suffix": ".png"}]}, {"f": "image.jpg"}, False),
    case("suffix is case sensitive", {"f": [{"suffix": ".png"}]}, {"f": "image.PNG"}, False),
    case("suffix ignore case", {"f": [{"suffix": {"equals-ignore-case": ".png"}}]}, {"f": "image.PNG"}, True),
    case("suffix only on strings", {"n": [{"suffix": "3"}]}, {"n": 123}, False),
    case("equals-ignore-case", {"name": [{"equals-ignore-case": "alice"}]}, {"name": "ALICE"}, True),
    case(
        "equals-ignore-case differs", {"name": [{"equals-ignore-case": "alice"}]}, {"name": "alicia"}, False
    ),
    case("equals-ignore-case only on strings", {"n": [{"equals-ignore-case": "1"}]}, {"n": 1}, False),
    case("operators OR plain values", {"s": ["x", {"prefix": "ab"}]}, {"s": "abc"}, True),
]

ANYTHING_BUT = [
    case(
        "anything-but string: other",
        {"state": [{"anything-but": "initializing"}]},
        {"state": "running"},
        True,
    ),
    case(
        "anything-but string: same",
        {"state": [{"anything-but": "initializing"}]},
        {"state": "initializing"},
        False,
    ),
    case(
        "anything-but string list",
        {"state": [{"anything-but": ["stopped", "overloaded"]}]},
        {"state": "stopped"},
        False,
    ),
    case(
        "anything-but string list: other",
        {"state": [{"anything-but": ["stopped", "overloaded"]}]},
        {"state": "ok"},
        True,
    ),
    case("anything-but number", {"x": [{"anything-but": 123}]}, {"x": 123}, False),
    case("anything-but number by value", {"x": [{"anything-but": [100, 200]}]}, {"x": 100.0}, False),
    case("anything-but number: other", {"x": [{"anything-but": [100, 200]}]}, {"x": 101}, True),
    case("anything-but number: a string is other", {"x": [{"anything-but": [100]}]}, {"x": "100"}, True),
    case("anything-but on a missing field", {"x": [{"anything-but": "a"}]}, {}, False),
    case("anything-but on an object value", {"x": [{"anything-but": "a"}]}, {"x": {"y": "b"}}, False),
    case("anything-but on null", {"x": [{"anything-but": "a"}]}, {"x": None}, True),
    case("anything-but number on null", {"x": [{"anything-but": [100]}]}, {"x": None}, True),
    case("anything-but number on a boolean", {"x": [{"anything-but": [100]}]}, {"x": True}, True),
    case(
        "anything-but on an array with another value",
        {"p": [{"anything-but": [100, 500]}]},
        {"p": [100, 50]},
        True,
    ),
    case(
        "anything-but on an array of excluded values",
        {"p": [{"anything-but": [100, 500]}]},
        {"p": [100, 500]},
        False,
    ),
    case("anything-but on an empty array", {"p": [{"anything-but": [100]}]}, {"p": []}, False),
    case("anything-but prefix", {"r": [{"anything-but": {"prefix": "us-"}}]}, {"r": "us-east-1"}, False),
    case(
        "anything-but prefix: other", {"r": [{"anything-but": {"prefix": "us-"}}]}, {"r": "eu-west-1"}, True
    ),
    case(
        "anything-but prefix list",
        {"r": [{"anything-but": {"prefix": ["us-", "eu-"]}}]},
        {"r": "eu-west-1"},
        False,
    ),
    case("anything-but suffix", {"f": [{"anything-but": {"suffix": ".png"}}]}, {"f": "a.png"}, False),
    case("anything-but suffix: other", {"f": [{"anything-but": {"suffix": ".png"}}]}, {"f": "a.jpg"}, True),
    case(
        "anything-but ignore case",
        {"s": [{"anything-but": {"equals-ignore-case": "init"}}]},
        {"s": "INIT"},
        False,
    ),
    case(
        "anything-but ignore case list",
        {"s": [{"anything-but": {"equals-ignore-case": ["a", "b"]}}]},
        {"s": "B"},
        False,
    ),
    case(
        "anything-but ignore case: other",
        {"s": [{"anything-but": {"equals-ignore-case": "init"}}]},
        {"s": "run"},
        True,
    ),
    case(
        "anything-but wildcard",
        {"p": [{"anything-but": {"wildcard": "*/lib/*"}}]},
        {"p": "/usr/lib/x"},
        False,
    ),
    case(
        "anything-but wildcard: other",
        {"p": [{"anything-but": {"wildcard": "*/lib/*"}}]},
        {"p": "/usr/bin/x"},
        True,
    ),
    case("anything-but prefix on a number", {"n": [{"anything-but": {"prefix": "1"}}]}, {"n": 123}, True),
]

NUMERIC = [
    case("greater than", {"n": [{"numeric": [">", 100]}]}, {"n": 100.5}, True),
    case("greater than: equal is not", {"n": [{"numeric": [">", 100]}]}, {"n": 100}, False),
    case("greater or equal", {"n": [{"numeric": [">=", 100]}]}, {"n": 100}, True),
    case("less than", {"n": [{"numeric": ["<", 10]}]}, {"n": 9.999}, True),
    case("less than: equal is not", {"n": [{"numeric": ["<", 10]}]}, {"n": 10}, False),
    case("less or equal", {"n": [{"numeric": ["<=", 10]}]}, {"n": 10}, True),
    case("equals", {"n": [{"numeric": ["=", 301.8]}]}, {"n": 301.8}, True),
    case("equals by value", {"n": [{"numeric": ["=", 3.018e2]}]}, {"n": 301.8}, True),
    case("equals integer and float", {"n": [{"numeric": ["=", 5]}]}, {"n": 5.0}, True),
    case("equals differs", {"n": [{"numeric": ["=", 5]}]}, {"n": 5.1}, False),
    case("range inside", {"n": [{"numeric": [">", 0, "<=", 5]}]}, {"n": 5}, True),
    case("range low edge open", {"n": [{"numeric": [">", 0, "<=", 5]}]}, {"n": 0}, False),
    case("range high edge open", {"n": [{"numeric": [">=", 0, "<", 5]}]}, {"n": 5}, False),
    case("range low edge closed", {"n": [{"numeric": [">=", 0, "<", 5]}]}, {"n": 0}, True),
    case("negative numbers", {"n": [{"numeric": ["<", -1.5]}]}, {"n": -2}, True),
    case("numeric on a string", {"n": [{"numeric": [">", 100]}]}, {"n": "150"}, False),
    case("numeric on a boolean", {"n": [{"numeric": [">", 0]}]}, {"n": True}, False),
    case("numeric on null", {"n": [{"numeric": [">", 0]}]}, {"n": None}, False),
    case("numeric on a missing field", {"n": [{"numeric": [">", 0]}]}, {}, False),
    case("numeric beyond 5e9 never matches", {"n": [{"numeric": [">", 0]}]}, {"n": 6e9}, False),
    case("numeric at 5e9 matches", {"n": [{"numeric": [">", 0]}]}, {"n": 5_000_000_000}, True),
    case("two numeric ranges OR", {"n": [{"numeric": ["<", 0]}, {"numeric": [">", 10]}]}, {"n": 11}, True),
    case(
        "full double precision (AWS: 6 decimals)", {"n": [{"numeric": [">", 100]}]}, {"n": 100.0000001}, True
    ),
    case("big integers compare exactly", {"n": [{"numeric": ["<", 5e9]}]}, {"n": 10**30}, False),
]

EXISTS = [
    case("exists true: present", {"c": [{"exists": True}]}, {"c": 5}, True),
    case("exists true: missing", {"c": [{"exists": True}]}, {}, False),
    case("exists true: null is present", {"c": [{"exists": True}]}, {"c": None}, True),
    case("exists true: empty string is present", {"c": [{"exists": True}]}, {"c": ""}, True),
    case("exists true: object is not a leaf", {"c": [{"exists": True}]}, {"c": {"c1": 100}}, False),
    case("exists true: empty array has no value", {"c": [{"exists": True}]}, {"c": []}, False),
    case("exists true: array of values", {"c": [{"exists": True}]}, {"c": [1]}, True),
    case("exists false: missing", {"c": [{"exists": False}]}, {"d": 1}, True),
    case("exists false: present", {"c": [{"exists": False}]}, {"c": 5}, False),
    case("exists false: null is present", {"c": [{"exists": False}]}, {"c": None}, False),
    case("exists false: object is not a leaf", {"c": [{"exists": False}]}, {"c": {"c1": 100}}, True),
    case("exists false: empty array", {"c": [{"exists": False}]}, {"c": []}, True),
    case("exists false: array of values", {"c": [{"exists": False}]}, {"c": [1]}, False),
    case("exists false: array of objects only", {"c": [{"exists": False}]}, {"c": [{"x": 1}]}, True),
    case(
        "exists false or value: array of other values", {"c": [{"exists": False}, "x"]}, {"c": ["y"]}, False
    ),
    case("exists false: parent missing", {"detail": {"c": [{"exists": False}]}}, {"other": 1}, True),
    case("exists false: parent is a scalar", {"detail": {"c": [{"exists": False}]}}, {"detail": "x"}, True),
    case(
        "exists false in array of objects: absent from every element",
        {"e": {"c": [{"exists": False}]}},
        {"e": [{"a": 1}, {"b": 2}]},
        True,
    ),
    case(
        "exists false in array of objects: present in one element",
        {"e": {"c": [{"exists": False}]}},
        {"e": [{"a": 1}, {"c": 2}]},
        False,
    ),
    case(
        "exists false beside a value: judged in the same element",
        {"e": {"name": ["b"], "c": [{"exists": False}]}},
        {"e": [{"name": "a"}, {"name": "b", "d": 1}, {"c": 1}]},
        True,
    ),
    case(
        "exists false beside a value: same element has it",
        {"e": {"name": ["b"], "c": [{"exists": False}]}},
        {"e": [{"name": "a"}, {"name": "b", "c": 1}]},
        False,
    ),
    case(
        "doc example: absent from every element",
        {"items": {"gift": [{"exists": False}]}},
        {"items": [{"sku": "a"}, {"sku": "b", "gift": True}]},
        False,
    ),
    case(
        "doc example: absent in the element that meets the rest",
        {"items": {"sku": ["a"], "gift": [{"exists": False}]}},
        {"items": [{"sku": "a"}, {"sku": "b", "gift": True}]},
        True,
    ),
    case("exists false or value", {"c": [{"exists": False}, "x"]}, {"c": "x"}, True),
    case("exists false or value: missing", {"c": [{"exists": False}, "x"]}, {}, True),
    case("exists false or value: other", {"c": [{"exists": False}, "x"]}, {"c": "y"}, False),
]

CIDR = [
    case("cidr v4 inside", {"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.0.255"}, True),
    case("cidr v4 outside", {"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.1.0"}, False),
    case("cidr v4 host bits in the block", {"ip": [{"cidr": "10.0.0.7/24"}]}, {"ip": "10.0.0.200"}, True),
    case(
        "cidr block starts at the address written",
        {"ip": [{"cidr": "10.0.0.7/24"}]},
        {"ip": "10.0.0.3"},
        False,
    ),
    case("cidr /0 covers every v4 address", {"ip": [{"cidr": "0.0.0.0/0"}]}, {"ip": "255.1.2.3"}, True),
    case("cidr v6 inside", {"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8:ffff::1"}, True),
    case("cidr v6 outside", {"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db9::1"}, False),
    case("cidr v6 does not match v4", {"ip": [{"cidr": "::/0"}]}, {"ip": "10.0.0.1"}, False),
    case("cidr on a non-address", {"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "10.0.0.x"}, False),
    case("cidr on a number", {"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": 10}, False),
    case("address literal matches any spelling", {"ip": ["2001:db8::1"]}, {"ip": "2001:DB8:0:0::1"}, True),
    case("address literal differs", {"ip": ["10.0.0.1"]}, {"ip": "10.0.0.2"}, False),
]

WILDCARD = [
    case("wildcard", {"f": [{"wildcard": "dir/*.png"}]}, {"f": "dir/a/b.png"}, True),
    case("wildcard differs", {"f": [{"wildcard": "dir/*.png"}]}, {"f": "dir/b.jpg"}, False),
    case("wildcard matches empty", {"f": [{"wildcard": "a*b"}]}, {"f": "ab"}, True),
    case("wildcard is anchored", {"f": [{"wildcard": "a*b"}]}, {"f": "xab"}, False),
    case("wildcard several stars", {"f": [{"wildcard": "*a*b*"}]}, {"f": "xxaxxbxx"}, True),
    case("wildcard spans lines", {"f": [{"wildcard": "a*b"}]}, {"f": "a\nb"}, True),
    case("escaped star is literal", {"f": [{"wildcard": r"a\*b"}]}, {"f": "a*b"}, True),
    case("escaped star is not a wildcard", {"f": [{"wildcard": r"a\*b"}]}, {"f": "axb"}, False),
    case("escaped backslash", {"f": [{"wildcard": "a\\\\*"}]}, {"f": "a\\xyz"}, True),
    case("regex characters are literal", {"f": [{"wildcard": "a.c*"}]}, {"f": "abc"}, False),
    case("wildcard only on strings", {"f": [{"wildcard": "1*"}]}, {"f": 12}, False),
]

OR = [
    case(
        "$or: first arm",
        {"source": ["aws.cw"], "$or": [{"metric": ["CPU"]}, {"ns": ["AWS/EC2"]}]},
        {"source": "aws.cw", "metric": "CPU"},
        True,
    ),
    case(
        "$or: second arm",
        {"source": ["aws.cw"], "$or": [{"metric": ["CPU"]}, {"ns": ["AWS/EC2"]}]},
        {"source": "aws.cw", "ns": "AWS/EC2"},
        True,
    ),
    case(
        "$or: no arm",
        {"source": ["aws.cw"], "$or": [{"metric": ["CPU"]}, {"ns": ["AWS/EC2"]}]},
        {"source": "aws.cw", "metric": "Disk"},
        False,
    ),
    case(
        "$or: arm matches but sibling field does not",
        {"source": ["aws.cw"], "$or": [{"metric": ["CPU"]}, {"ns": ["AWS/EC2"]}]},
        {"source": "aws.s3", "metric": "CPU"},
        False,
    ),
    case(
        "$or nested in an object",
        {"detail": {"$or": [{"a": [1]}, {"b": [2]}]}},
        {"detail": {"b": 2}},
        True,
    ),
    case(
        "$or with an AND arm",
        {"$or": [{"a": [1]}, {"b": [2], "c": [3]}]},
        {"b": 2, "c": 4},
        False,
    ),
    case(
        "$or inside $or",
        {"$or": [{"a": [1]}, {"b": [2], "$or": [{"c": [3]}, {"d": [4]}]}]},
        {"b": 2, "d": 4},
        True,
    ),
    case(
        "$or over an array: a value arm is met by one element",
        {"e": {"$or": [{"a": [{"exists": False}]}, {"b": [1]}]}},
        {"e": [{"b": 1}, {"a": 1}]},
        True,
    ),
    case(
        "$or over an array: an absence arm needs every element",
        {"e": {"$or": [{"a": [{"exists": False}]}, {"b": [1]}]}},
        {"e": [{"b": 2}, {"a": 1}]},
        False,
    ),
    case(
        "$or over an array: absence arm met",
        {"e": {"$or": [{"a": [{"exists": False}]}, {"b": [1]}]}},
        {"e": [{"b": 2}, {"c": 1}]},
        True,
    ),
    case(
        "$or arms over an array of objects",
        {"e": {"$or": [{"a": [1]}, {"b": [2]}]}},
        {"e": [{"a": 0}, {"b": 2}]},
        True,
    ),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), EXACT)
def test_exact_values(pattern: Any, event: Any, expected: bool) -> None:
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(("pattern", "event", "expected"), ARRAYS)
def test_arrays(pattern: Any, event: Any, expected: bool) -> None:
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(("pattern", "event", "expected"), PREFIX_SUFFIX)
def test_prefix_suffix_ignore_case(pattern: Any, event: Any, expected: bool) -> None:
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(("pattern", "event", "expected"), ANYTHING_BUT)
def test_anything_but(pattern: Any, event: Any, expected: bool) -> None:
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(("pattern", "event", "expected"), NUMERIC)
def test_numeric(pattern: Any, event: Any, expected: bool) -> None:
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(("pattern", "event", "expected"), EXISTS)
def test_exists(pattern: Any, event: Any, expected: bool) -> None:
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(("pattern", "event", "expected"), CIDR)
def test_cidr(pattern: Any, event: Any, expected: bool) -> None:
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(("pattern", "event", "expected"), WILDCARD)
def test_wildcard(pattern: Any, event: Any, expected: bool) -> None:
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(("pattern", "event", "expected"), OR)
def test_or(pattern: Any, event: Any, expected: bool) -> None:
    assert matches(pattern, event) is expected


def invalid(id: str, pattern: Any, where: str, what: str) -> Any:
    return pytest.param(pattern, where, what, id=id)


INVALID = [
    invalid("not an object", ["a"], "pattern[0]", "must be a JSON object"),
    invalid("a JSON string that is not an object", '"x"', "pattern[0]", "must be a JSON object"),
    invalid("broken JSON", '{"a": [1', "pattern[0]", "invalid JSON"),
    invalid("NaN is not JSON", '{"a": [NaN]}', "pattern[0]", "invalid JSON"),
    invalid("empty pattern", {}, "pattern[0]", "empty objects"),
    invalid("empty nested object", {"a": {}}, "pattern[0].a", "empty objects"),
    invalid("leaf not in a list", {"a": "x"}, "pattern[0].a", "object or an array"),
    invalid("number leaf not in a list", {"a": 1}, "pattern[0].a", "write [1]"),
    invalid("null leaf", {"a": None}, "pattern[0].a", "object or an array"),
    invalid("empty value list", {"a": []}, "pattern[0].a", "empty arrays"),
    invalid("nested list value", {"a": [["x"]]}, "pattern[0].a[0]", "a value must be"),
    invalid("unknown operator", {"a": [{"contains": "x"}]}, "pattern[0].a[0].contains", "unknown operator"),
    invalid(
        "two operators in one object",
        {"a": [{"prefix": "x", "suffix": "y"}]},
        "pattern[0].a[0]",
        "exactly one key",
    ),
    invalid("empty operator object", {"a": [{}]}, "pattern[0].a[0]", "exactly one key"),
    invalid("prefix not a string", {"a": [{"prefix": 1}]}, "pattern[0].a[0].prefix", "takes a string"),
    invalid(
        "prefix with another object",
        {"a": [{"prefix": {"x": "y"}}]},
        "pattern[0].a[0].prefix",
        "equals-ignore-case",
    ),
    invalid(
        "prefix ignore case not a string",
        {"a": [{"prefix": {"equals-ignore-case": 1}}]},
        "equals-ignore-case",
        "takes a string",
    ),
    invalid("suffix not a string", {"a": [{"suffix": ["x"]}]}, "pattern[0].a[0].suffix", "takes a string"),
    invalid(
        "equals-ignore-case list",
        {"a": [{"equals-ignore-case": ["x"]}]},
        "equals-ignore-case",
        "takes a string",
    ),
    invalid("numeric not a list", {"a": [{"numeric": 5}]}, "pattern[0].a[0].numeric", "non-empty array"),
    invalid("numeric empty", {"a": [{"numeric": []}]}, "pattern[0].a[0].numeric", "non-empty array"),
    invalid(
        "numeric odd length", {"a": [{"numeric": [">", 1, "<"]}]}, "pattern[0].a[0].numeric", "2 or 4 items"
    ),
    invalid(
        "numeric unknown operator",
        {"a": [{"numeric": ["!=", 5]}]},
        "pattern[0].a[0].numeric[0]",
        "unknown numeric operator",
    ),
    invalid(
        "numeric operand a string",
        {"a": [{"numeric": [">", "5"]}]},
        "pattern[0].a[0].numeric[1]",
        "must be a number",
    ),
    invalid(
        "numeric operand a boolean",
        {"a": [{"numeric": [">", True]}]},
        "pattern[0].a[0].numeric[1]",
        "must be a number",
    ),
    invalid(
        "numeric two lower bounds",
        {"a": [{"numeric": [">", 5, ">", 6]}]},
        "pattern[0].a[0].numeric[2]",
        "< or <=",
    ),
    invalid(
        "numeric range starting with <",
        {"a": [{"numeric": ["<", 5, "<", 6]}]},
        "pattern[0].a[0].numeric[0]",
        "> or >=",
    ),
    invalid(
        "numeric range equals",
        {"a": [{"numeric": ["=", 5, "<", 6]}]},
        "pattern[0].a[0].numeric[0]",
        "> or >=",
    ),
    invalid(
        "numeric lower above upper",
        {"a": [{"numeric": [">", 6, "<", 5]}]},
        "pattern[0].a[0].numeric",
        "below the upper bound",
    ),
    invalid(
        "numeric empty range",
        {"a": [{"numeric": [">=", 5, "<=", 5]}]},
        "pattern[0].a[0].numeric",
        "below the upper bound",
    ),
    invalid(
        "numeric above 5e9",
        {"a": [{"numeric": ["<", 5.1e9]}]},
        "pattern[0].a[0].numeric[1]",
        "outside the numeric range",
    ),
    invalid(
        "numeric below -5e9",
        {"a": [{"numeric": [">", -6e9, "<", 0]}]},
        "pattern[0].a[0].numeric[1]",
        "outside the numeric range",
    ),
    invalid(
        "numeric seven decimals",
        {"a": [{"numeric": [">", 0.0000001]}]},
        "pattern[0].a[0].numeric[1]",
        "6 decimal places",
    ),
    invalid("exists not a boolean", {"a": [{"exists": "true"}]}, "pattern[0].a[0].exists", "true or false"),
    invalid(
        "cidr without prefix length",
        {"a": [{"cidr": "10.0.0.1"}]},
        "pattern[0].a[0].cidr",
        "not a CIDR block",
    ),
    invalid(
        "cidr bad address", {"a": [{"cidr": "10.0.0.300/8"}]}, "pattern[0].a[0].cidr", "not a CIDR block"
    ),
    invalid("cidr bad length", {"a": [{"cidr": "10.0.0.0/33"}]}, "pattern[0].a[0].cidr", "not a CIDR block"),
    invalid("cidr /32", {"a": [{"cidr": "10.0.0.1/32"}]}, "pattern[0].a[0].cidr", "0 to 31"),
    invalid("cidr v6 /128", {"a": [{"cidr": "::1/128"}]}, "pattern[0].a[0].cidr", "0 to 127"),
    invalid(
        "cidr two slashes", {"a": [{"cidr": "10.0.0.0/8/8"}]}, "pattern[0].a[0].cidr", "not a CIDR block"
    ),
    invalid("cidr not a string", {"a": [{"cidr": 10}]}, "pattern[0].a[0].cidr", "takes a string"),
    invalid("wildcard double star", {"a": [{"wildcard": "a**b"}]}, "pattern[0].a[0].wildcard", "consecutive"),
    invalid("wildcard bad escape", {"a": [{"wildcard": r"a\b"}]}, "pattern[0].a[0].wildcard", "backslash"),
    invalid(
        "wildcard trailing backslash", {"a": [{"wildcard": "a\\"}]}, "pattern[0].a[0].wildcard", "backslash"
    ),
    invalid("wildcard not a string", {"a": [{"wildcard": 1}]}, "pattern[0].a[0].wildcard", "takes a string"),
    invalid(
        "anything-but null",
        {"a": [{"anything-but": None}]},
        "pattern[0].a[0].anything-but",
        "strings or numbers",
    ),
    invalid(
        "anything-but boolean",
        {"a": [{"anything-but": True}]},
        "pattern[0].a[0].anything-but",
        "strings or numbers",
    ),
    invalid(
        "anything-but mixed list",
        {"a": [{"anything-but": ["a", 1]}]},
        "pattern[0].a[0].anything-but",
        "all strings or all numbers",
    ),
    invalid(
        "anything-but empty list",
        {"a": [{"anything-but": []}]},
        "pattern[0].a[0].anything-but",
        "empty arrays",
    ),
    invalid(
        "anything-but unsupported",
        {"a": [{"anything-but": {"numeric": [">", 1]}}]},
        "anything-but.numeric",
        "does not support",
    ),
    invalid(
        "anything-but empty prefix",
        {"a": [{"anything-but": {"prefix": ""}}]},
        "anything-but.prefix",
        "cannot be empty",
    ),
    invalid(
        "anything-but prefix number",
        {"a": [{"anything-but": {"prefix": 1}}]},
        "anything-but.prefix",
        "takes a string",
    ),
    invalid(
        "anything-but two keys",
        {"a": [{"anything-but": {"prefix": "a", "suffix": "b"}}]},
        "anything-but",
        "one of prefix",
    ),
    invalid(
        "anything-but wildcard double star",
        {"a": [{"anything-but": {"wildcard": ["x", "a**"]}}]},
        "anything-but.wildcard",
        "consecutive",
    ),
    invalid(
        "anything-but number above 5e9",
        {"a": [{"anything-but": [6e9]}]},
        "anything-but",
        "outside the numeric range",
    ),
    invalid("$or not a list", {"$or": {"a": [1]}}, "pattern[0].$or", "array of objects"),
    invalid("$or one arm", {"$or": [{"a": [1]}]}, "pattern[0].$or", "at least 2"),
    invalid("$or empty", {"$or": []}, "pattern[0].$or", "at least 2"),
    invalid("$or scalar arm", {"$or": [{"a": [1]}, "b"]}, "pattern[0].$or[1]", "must be an object"),
    invalid("$or empty arm", {"$or": [{"a": [1]}, {}]}, "pattern[0].$or[1]", "empty objects"),
    invalid(
        "$or operator as field",
        {"$or": [{"numeric": [1]}, {"b": [2]}]},
        "pattern[0].$or[0].numeric",
        "is an operator",
    ),
    invalid(
        "nested error path",
        {"detail": {"total": [{"numeric": [">", "x"]}]}},
        "pattern[0].detail.total[0].numeric[1]",
        "number",
    ),
    invalid("odd key in path", {"a b": {"c": "x"}}, 'pattern[0]["a b"].c', "object or an array"),
]


@pytest.mark.parametrize(("pattern", "where", "what"), INVALID)
def test_invalid_patterns_say_where_and_what(pattern: Any, where: str, what: str) -> None:
    with pytest.raises(PatternError) as caught:
        EventFilter.compile([pattern])
    message = str(caught.value)
    assert where in caught.value.path
    assert what in caught.value.reason
    assert message == f"{caught.value.path}: {caught.value.reason}"
    assert "\n" not in message


def test_pattern_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^pattern\[0\]\.a: "):
        EventFilter.compile({"a": "x"})


def test_several_patterns_or() -> None:
    f = EventFilter.compile([{"a": ["x"]}, {"b": ["y"]}])
    assert f.matches({"a": "x"})
    assert f.matches({"b": "y"})
    assert not f.matches({"a": "y", "b": "x"})


def test_second_pattern_error_names_its_index() -> None:
    with pytest.raises(PatternError, match=r"^pattern\[1\]: empty objects"):
        EventFilter.compile([{"a": ["x"]}, {}])


def test_accepts_json_text_and_single_patterns() -> None:
    text = '{"detail": {"total": [{"numeric": [">", 100]}]}}'
    for patterns in (text, [text], text.encode(), {"detail": {"total": [{"numeric": [">", 100]}]}}):
        f = EventFilter.compile(patterns)
        assert f.matches({"detail": {"total": 101}})
        assert not f.matches({"detail": {"total": 99}})


def test_duplicate_keys_in_json_text_last_one_wins() -> None:
    f = EventFilter.compile('{"a": ["x"], "a": ["y"]}')
    assert f.matches({"a": "y"})
    assert not f.matches({"a": "x"})


def test_no_patterns_filter_nothing_out() -> None:
    f = EventFilter.compile([])
    assert f.matches({"anything": 1})
    assert f.matches(None)


def test_at_most_five_patterns() -> None:
    EventFilter.compile([{"a": [i]} for i in range(5)])
    with pytest.raises(PatternError, match="at most 5"):
        EventFilter.compile([{"a": [i]} for i in range(6)])


def test_pattern_text_at_most_4096_characters() -> None:
    def pattern_of(size: int) -> str:
        head = '{"a":["'
        return head + "x" * (size - len(head) - 3) + '"]}'

    EventFilter.compile(pattern_of(MAX_PATTERN_CHARS))
    with pytest.raises(PatternError, match="4097 characters"):
        EventFilter.compile(pattern_of(MAX_PATTERN_CHARS + 1))
    # A pattern given as an object is measured by its compact JSON text.
    with pytest.raises(PatternError, match="at most 4096"):
        EventFilter.compile({"a": ["x" * 4096]})


def test_or_combinations_at_most_1000() -> None:
    def arms(n: int, name: str) -> list[dict[str, Any]]:
        return [{f"{name}{i}": [i]} for i in range(n)]

    EventFilter.compile(
        {"x": {"$or": arms(10, "a")}, "y": {"$or": arms(10, "b")}, "z": {"$or": arms(10, "c")}}
    )
    with pytest.raises(PatternError, match="1001 combinations"):
        EventFilter.compile(
            {"x": {"$or": arms(7, "a")}, "y": {"$or": arms(11, "b")}, "z": {"$or": arms(13, "c")}}
        )


def test_not_a_list_of_patterns() -> None:
    with pytest.raises(PatternError, match="list of patterns"):
        EventFilter.compile(5)  # type: ignore[arg-type]


def test_pattern_values_cannot_inject_code() -> None:
    nasty = "x'); import os; os._exit(3); ('"
    f = EventFilter.compile({nasty: [nasty, {"prefix": nasty}], "b\n": {"c'": [1.5]}})
    assert f.matches({nasty: nasty, "b\n": {"c'": 1.5}})
    assert not f.matches({nasty: "y", "b\n": {"c'": 1.5}})


def test_deeply_nested_pattern() -> None:
    pattern: dict[str, Any] = {"leaf": ["x"]}
    event: dict[str, Any] = {"leaf": "x"}
    for i in range(40):
        pattern = {f"k{i}": pattern}
        event = {f"k{i}": event}
    f = EventFilter.compile(pattern)
    assert f.matches(event)


def test_too_deep_pattern_is_refused() -> None:
    pattern: dict[str, Any] = {"leaf": ["x"]}
    for i in range(100):
        pattern = {f"k{i}": pattern}
    with pytest.raises(PatternError, match="nested more than"):
        EventFilter.compile(pattern)


def test_matches_never_raises_on_odd_records() -> None:
    f = EventFilter.compile(
        {
            "a": [{"anything-but": "x"}, {"cidr": "10.0.0.0/8"}, {"wildcard": "a*"}, {"numeric": [">", 1]}],
            "b": {"c": [{"exists": False}]},
        }
    )
    for record in (None, 1, "s", [], [1, [2]], {"a": object()}, {"a": [[[]]]}, {"a": {"x": 1}}, {"a": b"x"}):
        assert f.matches(record) in (True, False)


def test_repr_and_patterns() -> None:
    f = EventFilter.compile('{"a": ["x"]}')
    assert f.patterns == ({"a": ["x"]},)
    assert repr(f) == """EventFilter(['{"a":["x"]}'])"""


def test_records_from_python_code_match_as_their_json_equivalents() -> None:
    import enum
    from collections import OrderedDict
    from types import MappingProxyType

    class Kind(enum.StrEnum):
        PLACED = "OrderPlaced"

    class Level(enum.IntEnum):
        HIGH = 150

    f = EventFilter.compile(
        {"value": {"detail-type": [{"prefix": "Order"}], "detail": {"total": [{"numeric": [">", 100]}]}}}
    )
    for record in (
        {"value": {"detail-type": Kind.PLACED, "detail": {"total": Level.HIGH}}},
        MappingProxyType({"value": OrderedDict({"detail-type": "OrderPlaced", "detail": {"total": 150.5}})}),
        {"value": ({"detail-type": ("x", "OrderPlaced"), "detail": [{"total": (1, 101)}]},)},
    ):
        assert f.matches(record)
    assert not f.matches({"value": {"detail-type": Kind.PLACED, "detail": {"total": (1, 2)}}})
    absent = EventFilter.compile({"a": {"b": [{"exists": False}]}, "c": [{"anything-but": "x"}]})
    assert absent.matches({"a": ({"x": 1},), "c": ("y",)})
    assert not absent.matches({"a": ({"b": 1},), "c": ("y",)})
    assert not absent.matches({"c": ("x",)})


def test_values_that_are_not_json_data_match_no_condition() -> None:
    f = EventFilter.compile({"a": [{"exists": True}, {"anything-but": "x"}, {"exists": False}]})
    assert not f.matches({"a": b"bytes"})
    assert f.matches({"a": [b"bytes", "y"]})
