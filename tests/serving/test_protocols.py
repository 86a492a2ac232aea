"""KServe V1 and the Open Inference Protocol (V2), driven with the official kserve client."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

USERS = [1, 2, 999_999]
ITEMS = [5, 6, 7]
POSITIONS = [1, 3, 20]
DEVICES = ["ios", "web", "android"]
TS = ["2026-11-04T10:00:00Z", "2026-11-04T23:30:00+02:00", "2026-11-04T01:00:00-05:00"]


def _run(coro):
    return asyncio.run(coro)


def _inputs(binary: bool, *, with_ts: bool = True) -> list[InferInput]:
    arrays = {
        "user_id": (np.array(USERS, dtype=np.int64), "INT64"),
        "item_id": (np.array(ITEMS, dtype=np.int64), "INT64"),
        "position": (np.array(POSITIONS, dtype=np.int32), "INT32"),
        "device": (np.array(DEVICES, dtype=np.object_), "BYTES"),
    }
    if with_ts:
        arrays["ts"] = (np.array(TS, dtype=np.object_), "BYTES")
    out = []
    for name, (arr, datatype) in arrays.items():
        t = InferInput(name, list(arr.shape), datatype)
        t.set_data_from_numpy(arr, binary_data=binary)
        out.append(t)
    return out


def _v1_predictions(url: str) -> list[dict]:
    async def go():
        c = InferenceRESTClient(RESTConfig(protocol="v1", timeout=20))
        try:
            assert await c.is_server_live(url) is True
            assert await c.is_model_ready(url, "taml") is True
            instances = [
                {"user_id": u, "item_id": i, "position": p, "device": d, "ts": t}
                for u, i, p, d, t in zip(USERS, ITEMS, POSITIONS, DEVICES, TS, strict=True)
            ]
            return (await c.infer(url, {"instances": instances}, model_name="taml"))["predictions"]
        finally:
            await c.close()

    return _run(go())


def test_v1_through_the_kserve_client(ready_world):
    preds = _v1_predictions(ready_world["url"])
    assert len(preds) == 3 and {p["model_version"] for p in preds} == {"r1"}
    assert [p["unknown_user"] for p in preds] == [False, False, True]
    assert all(0 < p["p_ctcvr"] <= p["p_ctr"] < 1 for p in preds)


@pytest.mark.parametrize("binary", [False, True], ids=["json-tensors", "binary-tensors"])
def test_v2_through_the_kserve_client_scores_like_v1(ready_world, binary):
    url = ready_world["url"]

    async def go():
        c = InferenceRESTClient(RESTConfig(protocol="v2", timeout=20))
        try:
            assert await c.is_server_live(url) is True
            assert await c.is_server_ready(url) is True
            assert await c.is_model_ready(url, "taml") is True
            req = InferRequest("taml", _inputs(binary), request_id="req-7")
            return await c.infer(url, req, model_name="taml")
        finally:
            await c.close()

    res = _run(go())
    assert res.model_name == "taml" and res.id == "req-7"
    assert res.parameters["model_version"] == "r1"
    got = {o.name: o for o in res.outputs}
    assert set(got) == {"p_ctr", "p_cvr", "p_ctcvr"}
    assert all(o.datatype == "FP32" and o.shape == [3] for o in res.outputs)
    v1 = _v1_predictions(url)
    for name in ("p_ctr", "p_cvr", "p_ctcvr"):
        np.testing.assert_allclose(got[name].as_numpy(), [p[name] for p in v1], rtol=1e-5)


def test_v2_metadata_and_requested_outputs(ready_world):
    url = ready_world["url"]
    meta = httpx.get(url + "/v2/models/taml").json()
    assert meta["name"] == "taml" and meta["versions"] == ["r1"]
    assert {(t["name"], t["datatype"]) for t in meta["inputs"]} == {
        ("user_id", "INT64"),
        ("item_id", "INT64"),
        ("position", "INT32"),
        ("device", "BYTES"),
        ("ts", "BYTES"),
    }
    body = {
        "inputs": [
            {"name": "user_id", "datatype": "INT64", "shape": [2, 1], "data": [[1], [2]]},
            {"name": "item_id", "datatype": "INT64", "shape": [2], "data": [3, 4]},
        ],
        "outputs": [{"name": "p_ctcvr"}],
    }
    r = httpx.post(url + "/v2/models/taml/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_version"] == "r1" and [o["name"] for o in out["outputs"]] == ["p_ctcvr"]
    assert httpx.get(url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(url + "/v2/health/ready").json() == {"ready": True}


def _t(name, datatype, shape, data):
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


UID, IID = _t("user_id", "INT64", [2], [1, 2]), _t("item_id", "INT64", [2], [3, 4])
BAD_V2 = [
    ("no inputs", {"outputs": []}, "inputs"),
    ("inputs not a list", {"inputs": {"user_id": 1}}, "inputs"),
    ("missing item_id", {"inputs": [UID]}, "inputs"),
    ("unknown input", {"inputs": [UID, IID, _t("colour", "BYTES", [2], ["a", "b"])]}, "inputs[2].name"),
    ("duplicate input", {"inputs": [UID, IID, UID]}, "inputs[2].name"),
    ("wrong datatype", {"inputs": [_t("user_id", "INT32", [2], [1, 2]), IID]}, "user_id.datatype"),
    ("fp32 ids", {"inputs": [UID, _t("item_id", "FP32", [2], [3.0, 4.0])]}, "item_id.datatype"),
    ("shape vs data", {"inputs": [_t("user_id", "INT64", [3], [1, 2]), IID]}, "user_id.data"),
    ("3-d shape", {"inputs": [_t("user_id", "INT64", [2, 1, 1], [1, 2]), IID]}, "user_id.shape"),
    ("[N, 2] shape", {"inputs": [_t("user_id", "INT64", [1, 2], [1, 2]), IID]}, "user_id.shape"),
    ("row counts differ", {"inputs": [UID, _t("item_id", "INT64", [1], [3])]}, "item_id.shape"),
    ("too many rows", {"inputs": [_t("user_id", "INT64", [51], [1] * 51), IID]}, "user_id.shape"),
    ("string id", {"inputs": [_t("user_id", "INT64", [2], [1, "2"]), IID]}, "user_id.data[1]"),
    ("float id", {"inputs": [UID, _t("item_id", "INT64", [2], [3, 4.5])]}, "item_id.data[1]"),
    ("negative id", {"inputs": [_t("user_id", "INT64", [2], [1, -2]), IID]}, "user_id.data[1]"),
    ("position range", {"inputs": [UID, IID, _t("position", "INT32", [2], [1, 0])]}, "position.data[1]"),
    ("int32 overflow", {"inputs": [UID, IID, _t("position", "INT32", [2], [1, 2**31])]}, "position.data[1]"),
    ("bad device", {"inputs": [UID, IID, _t("device", "BYTES", [2], ["ios", "tv"])]}, "device.data[1]"),
    (
        "naive ts",
        {"inputs": [UID, IID, _t("ts", "BYTES", [2], ["2026-11-04T10:00:00Z", "2026-11-04"])]},
        "ts.data[1]",
    ),
    ("no data", {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [2]}, IID]}, "user_id.data"),
    ("bad output", {"inputs": [UID, IID], "outputs": [{"name": "p_click"}]}, "outputs[0].name"),
    ("id not a string", {"id": 5, "inputs": [UID, IID]}, "id"),
]


@pytest.mark.parametrize("case,body,field", BAD_V2, ids=[b[0] for b in BAD_V2])
def test_bad_v2_requests_are_v2_error_bodies_naming_the_field(ready_world, case, body, field):
    r = httpx.post(ready_world["url"] + "/v2/models/taml/infer", json=body)
    assert r.status_code == 400, r.text
    out = r.json()
    assert out["field"] == field and field in out["error"], out


def test_the_kserve_client_sees_a_v2_error_as_a_4xx_with_its_message(ready_world):
    url = ready_world["url"]
    ids = InferInput("user_id", [2], "INT64")
    ids.set_data_from_numpy(np.array([1, -5], dtype=np.int64), binary_data=True)
    items = InferInput("item_id", [2], "INT64")
    items.set_data_from_numpy(np.array([1, 2], dtype=np.int64), binary_data=True)

    async def go():
        c = InferenceRESTClient(RESTConfig(protocol="v2", timeout=20))
        try:
            await c.infer(url, InferRequest("taml", [ids, items]), model_name="taml")
        finally:
            await c.close()

    with pytest.raises(httpx.HTTPStatusError) as e:
        _run(go())
    assert e.value.response.status_code == 400 and "user_id.data[1]" in str(e.value)


def test_binary_tensor_sizes_are_checked(ready_world):
    url = ready_world["url"] + "/v2/models/taml/infer"
    head = (
        b'{"inputs":[{"name":"user_id","datatype":"INT64","shape":[2],"parameters":{"binary_data_size":16}},'
        b'{"name":"item_id","datatype":"INT64","shape":[2],"parameters":{"binary_data_size":16}}]}'
    )
    good = np.array([1, 2], "<i8").tobytes() + np.array([3, 4], "<i8").tobytes()
    ok = httpx.post(url, content=head + good, headers={"inference-header-content-length": str(len(head))})
    assert ok.status_code == 200, ok.text
    for tail, hdr, field in (
        (good[:-3], str(len(head)), "item_id.parameters.binary_data_size"),
        (good + b"x", str(len(head)), None),
        (good, str(len(head) + 10**6), "inference-header-content-length"),
        (good, "-1", "inference-header-content-length"),
    ):
        r = httpx.post(url, content=head + tail, headers={"inference-header-content-length": hdr})
        assert r.status_code == 400 and r.json()["field"] == field, r.text
