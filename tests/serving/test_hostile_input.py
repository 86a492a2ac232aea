"""Client input that used to give a 500 is a 400 naming the field, on every protocol; the class is
covered by property-based bodies (hypothesis) and by fuzzing from the OpenAPI document
(schemathesis) against a live uvicorn on 127.0.0.1. None may ever get a 5xx."""

from __future__ import annotations

import datetime as dt
import json
import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PREDICT = "/v1/models/taml:predict"
RANK = "/v1/models/taml:rank"
INFER = "/v2/models/taml/infer"
DEEP = 100_000  # far past the interpreter's recursion limit


def _v1(**fields) -> bytes:
    inst = {"user_id": 1, "item_id": 2, **fields}
    return json.dumps({"instances": [{"user_id": 3, "item_id": 4}, inst]}).encode()


def _v2(name: str, datatype: str, value_json: str) -> bytes:
    tensors = {"user_id": ("INT64", "1"), "item_id": ("INT64", "2"), name: (datatype, value_json)}
    inputs = ",".join(
        f'{{"name":"{n}","datatype":"{d}","shape":[1],"data":[{v}]}}' for n, (d, v) in tensors.items()
    )
    return f'{{"inputs":[{inputs}]}}'.encode()


HUGE = "1" * 4301  # more digits than int() converts by default
NEST = "[" * DEEP + "]" * DEEP
CASES = [
    # (route, body, field)  -- each answered 500 before the fix
    (PREDICT, _v1(user_id=2**63), "instances[1].user_id"),
    (PREDICT, _v1(item_id=2**64 + 5), "instances[1].item_id"),
    (RANK, json.dumps({"user_id": 1, "items": [1, 2**63]}).encode(), "items[1]"),
    (PREDICT, _v1().replace(b'"item_id": 2}', f'"item_id": {HUGE}}}'.encode()), "instances[1].item_id"),
    (RANK, f'{{"user_id": {HUGE}, "items": [1]}}'.encode(), "user_id"),
    (
        PREDICT,
        _v1().replace(b'"item_id": 2}', f'"item_id": 2, "extra": {NEST}}}'.encode()),
        "instances[1].extra",
    ),
    (RANK, f'{{"user_id": 1, "items": {NEST}}}'.encode(), "items"),
    (PREDICT, _v1(ts="0001-01-01T00:30:00+01:00"), "instances[1].ts"),
    (PREDICT, _v1(ts="9999-12-31T23:30:00-01:00"), "instances[1].ts"),
    (RANK, json.dumps({"user_id": 1, "items": [1], "ts": "9999-12-31T23:59:59-23:59"}).encode(), "ts"),
    (INFER, _v2("ts", "BYTES", '"0001-01-01T00:00:00+00:01"'), "ts.data[0]"),
    (INFER, _v2("user_id", "INT64", str(2**63)), "user_id.data[0]"),
    (INFER, _v2("item_id", "INT64", HUGE), "item_id.data[0]"),
    (INFER, _v2("device", "BYTES", NEST), "inputs[2].data"),
]


@pytest.mark.parametrize(
    "route,body,field", CASES, ids=[f"{r.split('/')[-1]}-{f}-{i}" for i, (r, _, f) in enumerate(CASES)]
)
def test_inputs_that_crashed_the_server_are_400s_naming_the_field(ready_world, route, body, field):
    r = httpx.post(ready_world["url"] + route, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text[:300]
    out = r.json()
    assert out["field"] == field and field in out["error"], out
    assert len(r.content) < 4000  # the answer never echoes the client's megabytes


# --- the class: property-based bodies ----------------------------------------------------------

_offsets = st.sampled_from(["Z", "+00:00", "+23:59", "-23:59", "+01:00", "-01:00", "+14:00", "-12:00"])
_timestamps = st.builds(
    lambda d, off: d.isoformat(timespec="seconds") + off,
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)),
    _offsets,
)
_ints = st.one_of(
    st.integers(-5, 300),
    st.integers(2**63 - 3, 2**63 + 3),
    st.integers(-(2**80), 2**80),
    st.sampled_from([2**31, -(2**31) - 1, 0, 1, 100, 101]),
)
_leaf = st.one_of(
    _ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    _timestamps,
    st.sampled_from(["ios", "android", "web", "", "IOS"]),
)
_json = st.recursive(
    _leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=12,
)
_value = st.one_of(_leaf, _json)
_instance = st.fixed_dictionaries(
    {},
    optional={k: _value for k in ("user_id", "item_id", "position", "device", "ts")} | {"extra": _json},
)


_INT_TOKEN = re.compile(r"(?<=[\[:,])-?\d+(?=[,\]}])")
_text_hazards = st.sampled_from([HUGE, "-" + HUGE, "[" * 5000 + "]" * 5000, NEST])


@st.composite
def _v1_bodies(draw) -> bytes:
    route = draw(st.sampled_from([PREDICT, RANK]))
    if route == PREDICT:
        body: object = {"instances": draw(st.lists(_instance, min_size=0, max_size=4) | _json)}
    else:
        body = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "user_id": _value,
                    "items": st.lists(_value, max_size=4) | _value,
                    "device": _value,
                    "ts": _value,
                },
            )
        )
    text = json.dumps(body, allow_nan=True, separators=(",", ":"))
    if draw(st.booleans()):  # some values exist only as text: put one where a JSON integer stood
        text = _INT_TOKEN.sub(draw(_text_hazards), text, count=1)
    return route.encode() + b"\n" + text.encode()


@st.composite
def _v2_bodies(draw) -> bytes:
    names = ["user_id", "item_id", "position", "device", "ts", "other"]
    n = draw(st.integers(0, 3))
    inputs = []
    for name in draw(st.lists(st.sampled_from(names), min_size=0, max_size=5)):
        t = {
            "name": name,
            "datatype": draw(st.sampled_from(["INT64", "INT32", "BYTES", "FP32", 5])),
            "shape": draw(st.sampled_from([[n], [n, 1], [n, 2], [], [-1], "x", [2**63]])),
        }
        if draw(st.booleans()):
            t["data"] = draw(st.lists(_value, min_size=n, max_size=n) | _value)
        inputs.append(t)
    body = {"inputs": inputs}
    if draw(st.booleans()):
        body["outputs"] = draw(st.lists(st.fixed_dictionaries({"name": _value}), max_size=2) | _value)
    if draw(st.booleans()):
        body["id"] = draw(_value)
    return INFER.encode() + b"\n" + json.dumps(body, allow_nan=True).encode()


def _check(url: str, client: httpx.Client, payload: bytes) -> None:
    route, _, body = payload.partition(b"\n")
    r = client.post(url + route.decode(), content=body, headers={"content-type": "application/json"})
    assert r.status_code in (200, 400, 413), (r.status_code, r.text[:300], body[:300])
    out = r.json()
    if r.status_code == 400:
        assert out["error"] and ("field" in out)
        if out["field"]:
            assert out["field"] in out["error"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(payload=_v1_bodies())
def test_no_v1_body_gets_a_5xx(ready_world, payload):
    with httpx.Client(timeout=10) as c:
        _check(ready_world["url"], c, payload)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(payload=_v2_bodies())
def test_no_v2_body_gets_a_5xx(ready_world, payload):
    with httpx.Client(timeout=10) as c:
        _check(ready_world["url"], c, payload)


# --- the OpenAPI document and a fuzzer working from it ------------------------------------------


def test_the_openapi_document_describes_bodies_answers_and_limits(ready_world):
    spec = httpx.get(ready_world["url"] + "/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for path, model in ((PREDICT, "PredictRequest"), (RANK, "RankRequest"), (INFER, "V2InferRequest")):
        op = spec["paths"][path]["post"]
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/" + model) and model in schemas
        assert {"200", "400", "408", "413", "503"} <= set(op["responses"]), op["responses"].keys()
        for code in ("400", "413"):
            assert op["responses"][code]["content"]["application/json"]["schema"]["$ref"].endswith(
                "/ErrorBody"
            )
        assert "$ref" in op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schemas["PredictRequest"]["properties"]["instances"]["maxItems"] == 50
    assert schemas["RankRequest"]["properties"]["items"]["maxItems"] == 100
    inst = schemas["Instance"]["properties"]
    assert inst["user_id"]["maximum"] == 2**63 - 1 and inst["user_id"]["minimum"] == 0
    assert "get" in spec["paths"]["/v2/health/ready"] and "get" in spec["paths"]["/v2/models/taml"]
