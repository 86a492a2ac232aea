"""Hypothesis strategies of request bodies for the serving routes, hostile ones included.

Used by tests/serving/test_hostile_input.py and the fuzz campaign (tests/serving/fuzz_campaign.py).
Each strategy draws ``ROUTE + b"\\n" + BODY``.
"""

from __future__ import annotations

import datetime as dt
import json
import re

from hypothesis import strategies as st

PREDICT = "/v1/models/taml:predict"
RANK = "/v1/models/taml:rank"
INFER = "/v2/models/taml/infer"
DEEP = 100_000  # far past the interpreter's recursion limit
HUGE = "1" * 4301  # more digits than int() converts by default
NEST = "[" * DEEP + "]" * DEEP

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
def v1_bodies(draw) -> bytes:
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
def v2_bodies(draw) -> bytes:
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
