"""Client input that used to give a 500 is a 400 naming the field, on every protocol; the class is
covered by property-based bodies (hypothesis) and by fuzzing from the OpenAPI document
(schemathesis) against a live uvicorn on 127.0.0.1. None may ever get a 5xx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hostile_bodies import HUGE, INFER, NEST, PREDICT, RANK, v1_bodies, v2_bodies
from hypothesis import HealthCheck, given, settings


def _v1(**fields) -> bytes:
    inst = {"user_id": 1, "item_id": 2, **fields}
    return json.dumps({"instances": [{"user_id": 3, "item_id": 4}, inst]}).encode()


def _v2(name: str, datatype: str, value_json: str) -> bytes:
    tensors = {"user_id": ("INT64", "1"), "item_id": ("INT64", "2"), name: (datatype, value_json)}
    inputs = ",".join(
        f'{{"name":"{n}","datatype":"{d}","shape":[1],"data":[{v}]}}' for n, (d, v) in tensors.items()
    )
    return f'{{"inputs":[{inputs}]}}'.encode()


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


# --- the class: property-based bodies (tests/serving/hostile_bodies.py) -------------------------


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
@given(payload=v1_bodies())
def test_no_v1_body_gets_a_5xx(ready_world, payload):
    with httpx.Client(timeout=10) as c:
        _check(ready_world["url"], c, payload)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(payload=v2_bodies())
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


def test_schemathesis_fuzzing_from_the_openapi_document_finds_no_5xx(ready_world, tmp_path):
    """A short, time-bounded campaign (the long one: tests/serving/fuzz_campaign.py, docs/SERVING.md)."""
    exe = Path(sys.executable).with_name("schemathesis")
    checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
    run = subprocess.run(
        [
            str(exe), "run", ready_world["url"] + "/openapi.json", "--checks", checks, "--mode", "all",
            "--phases", "coverage,fuzzing", "--max-examples", "8", "--max-time", "60", "--seed", "7",
            "--workers", "1", "--suppress-health-check", "all", "--no-color",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
