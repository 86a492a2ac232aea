"""The byte encodings of featurestore against Feast's and protobuf's own functions."""

from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pyarrow as pa

from featurestore import encoding as E
from featurestore import redis_store as R


def test_entity_keys_and_values_are_feasts():
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    ints = [0, 1, 127, 128, 300, 2**31, 2**63 - 1, -1, -(2**63)]
    for v in ints:
        want = serialize_entity_key(EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=v)]), 3)
        assert E.entity_key("user_id", v) == want
        assert E.encode_int64(v) == Value(int64_val=v).SerializeToString()
        assert E.decode_value(E.encode_int64(v)) == v
    assert E.entity_keys("item_id", np.array(ints, dtype=np.int64)) == [
        E.entity_key("item_id", v) for v in ints
    ]
    for x in [0.0, -0.0, 0.05, 1e-300, 1.7976931348623157e308, -3.5]:
        assert E.encode_double(x) == Value(double_val=x).SerializeToString()
        assert struct.pack("<d", E.decode_value(E.encode_double(x))) == struct.pack("<d", x)
    assert E.decode_value(Value().SerializeToString()) is None
    assert E.decode_value(Value(string_val="a").SerializeToString()) == "a"


def test_a_column_encodes_as_feasts_values_and_texts_with_nulls_empty():
    from feast.protos.feast.types.Value_pb2 import Value

    blobs, texts = E.encode_column(pa.array([3, None, -7, 3], pa.int64()), "Int64")
    assert blobs == [Value(int64_val=3).SerializeToString(), b"", Value(int64_val=-7).SerializeToString()] + [
        Value(int64_val=3).SerializeToString()
    ]
    assert texts == ["3", None, "-7", "3"]
    blobs, texts = E.encode_column(pa.chunked_array([[0.25], [None]]), "Float32")
    assert blobs == [Value(double_val=0.25).SerializeToString(), b""] and texts == ["0.25", None]


def test_redis_fields_keys_and_timestamps_are_feasts():
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _mmh3, _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from google.protobuf.timestamp_pb2 import Timestamp

    for view, feat in [("user_profile", "gender"), ("item_stats_7d", "item_ctr_7d"), ("v", "ü")]:
        assert R.feature_field(view, feat) == _mmh3(f"{view}:{feat}")
    for v in [0, 1, 300, 2**40, -1]:
        ek = EntityKey(join_keys=["item_id"], entity_values=[Value(int64_val=v)])
        assert R.entity_key("taml", "item_id", v) == _redis_key("taml", ek, 3)
        assert R.entity_key("taml", "item_id", v) == serialize_entity_key(ek, 3) + b"taml"
    for t in [
        "1970-01-01T00:00:00",
        "2026-11-03T00:00:00",
        "2026-11-03T12:34:56.789012",
        "1969-12-31T23:59:59.5",
    ]:
        when = dt.datetime.fromisoformat(t).replace(tzinfo=dt.UTC)
        ts = Timestamp()
        ts.FromDatetime(when)
        us = (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
        assert E.encode_timestamp(us) == ts.SerializeToString(), t
        assert E.decode_timestamp_ns(ts.SerializeToString()) == ts.seconds * 10**9 + ts.nanos
    assert E.decode_timestamp_ns(None) == 0 and E.decode_timestamp_ns(b"") == 0


def test_sqlite_event_ts_is_what_feasts_sqlite3_adapter_stores():
    when = [dt.datetime(2026, 11, 3, 12, 34, 56, 789012), dt.datetime(1970, 1, 1, 0, 0, 1)]
    us = np.array(
        [(w - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1) for w in when], dtype=np.int64
    )
    assert E.sqlite_event_ts(us) == [int(w.timestamp()) for w in when]
