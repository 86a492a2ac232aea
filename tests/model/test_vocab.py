import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from model.encode import encode, encode_labels
from model.errors import FeatureSpecError
from model.spec import FeatureSpec, FieldSpec
from model.vocab import Vocabulary

SPEC = FeatureSpec(
    fields=[
        FieldSpec(name="item_id"),
        FieldSpec(name="device"),
        FieldSpec(name="ctr", column="ctr_7d", kind="bucketized", boundaries=[0.01, 0.1]),
    ],
    min_count=2,
)


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": pd.array([7, 7, 7, 3, 3, 9, None], dtype="Int64"),
            "device": ["ios", "ios", "web", "web", None, "android", "ios"],
            "ctr_7d": [0.0, 0.01, 0.05, 0.5, None, 0.1, 0.02],
            "click": [1, 0, 1, 0, 0, 1, 1],
            "conversion": [1, 0, 0, 0, 0, 1, 0],
        }
    )


def test_min_count_oov_and_missing():
    v = Vocabulary.build(frame(), SPEC)
    assert v.fields["item_id"].values == [7, 3]  # 9 seen once < min_count
    assert v.fields["device"].values == ["ios", "web"]
    assert v.sizes == [4, 4, 5]  # reserved 0/1 + values; 2 + 3 buckets
    x = encode(frame(), SPEC, v)
    assert x[:, 0].tolist() == [2, 2, 2, 3, 3, 1, 0]
    assert x[:, 1].tolist() == [2, 2, 3, 3, 0, 1, 2]
    # buckets: x < 0.01 -> 2, 0.01 <= x < 0.1 -> 3, >= 0.1 -> 4; null -> 0
    assert x[:, 2].tolist() == [2, 3, 3, 4, 0, 4, 3]
    assert x.dtype == np.int64


def test_pyarrow_input_encodes_like_pandas():
    v = Vocabulary.build(frame(), SPEC)
    table = pa.Table.from_pandas(frame())
    np.testing.assert_array_equal(encode(table, SPEC, v), encode(frame(), SPEC, v))
    assert Vocabulary.build(table, SPEC).to_json() == v.to_json()


def test_growth_never_moves_an_index():
    v1 = Vocabulary.build(frame(), SPEC)
    later = pd.DataFrame(
        {"item_id": [9, 9, 5, 5, 5], "device": ["tv", "tv", "ios", "ios", "x"], "ctr_7d": [0.1] * 5}
    )
    v2 = v1.grow(later, SPEC)
    assert v2.fields["item_id"].values == [7, 3, 5, 9]
    assert v2.fields["device"].values == ["ios", "web", "tv"]
    old_x = encode(frame(), SPEC, v1)
    np.testing.assert_array_equal(
        encode(frame(), SPEC, v2)[:, :2][old_x[:, :2] > 1], old_x[:, :2][old_x[:, :2] > 1]
    )
    assert v1.fields["item_id"].values == [7, 3]  # the old vocabulary is untouched


def test_json_round_trip_and_bad_json():
    v = Vocabulary.build(frame(), SPEC)
    again = Vocabulary.from_json(json.loads(json.dumps(v.to_json())))
    assert again.to_json() == v.to_json()
    np.testing.assert_array_equal(encode(frame(), SPEC, again), encode(frame(), SPEC, v))
    with pytest.raises(FeatureSpecError, match="item_id"):
        Vocabulary.from_json(
            {"fields": {"item_id": {"kind": "categorical", "value_type": "int", "values": ["a"]}}}
        )


def test_string_ids_in_an_integer_field_are_oov_not_a_crash():
    v = Vocabulary.build(frame(), SPEC)
    odd = frame().astype({"item_id": object})
    odd.loc[0, "item_id"] = "seven"
    odd.loc[1, "item_id"] = "3"
    x = encode(odd, SPEC, v)
    assert x[0, 0] == 1 and x[1, 0] == 3


def test_missing_column_is_named():
    with pytest.raises(FeatureSpecError, match="'ctr' reads column 'ctr_7d'"):
        encode(frame().drop(columns="ctr_7d"), SPEC, Vocabulary.build(frame(), SPEC))


def test_labels_are_checked():
    click, conv = encode_labels(frame(), SPEC)
    assert click.dtype == np.float32 and conv.tolist() == [1, 0, 0, 0, 0, 1, 0]
    bad = frame()
    bad.loc[1, "conversion"] = 1
    with pytest.raises(FeatureSpecError, match="conversion implies click"):
        encode_labels(bad, SPEC)
    bad = frame()
    bad.loc[0, "click"] = 2
    with pytest.raises(FeatureSpecError, match="must be 0/1"):
        encode_labels(bad, SPEC)


def test_counts_accumulate_across_days_so_a_steady_id_gets_a_row():
    spec = FeatureSpec(fields=[FieldSpec(name="user_id")], min_count=10)
    # User 5 is seen 4 times a day: never frequent within one day, frequent over three.
    day = pd.DataFrame({"user_id": [5, 5, 5, 5, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]})
    v = Vocabulary.build(day, spec, row_days=["d1"] * len(day))
    assert v.fields["user_id"].values == [8] and v.fields["user_id"].counts[5] == 4
    v = v.grow(day, spec, row_days=["d2"] * len(day))
    assert v.fields["user_id"].values == [8]
    v = v.grow(day, spec, row_days=["d3"] * len(day))
    assert v.fields["user_id"].values == [8, 5]  # total 12 >= 10: admitted after the old index
    assert v.fields["user_id"].counts == {5: 12, 8: 33}
    assert v.counted_days == ["d1", "d2", "d3"]


def test_a_day_in_several_sliding_windows_is_counted_once_per_line():
    spec = FeatureSpec(fields=[FieldSpec(name="user_id")], min_count=3)
    d1 = pd.DataFrame({"user_id": [1, 1]})
    d2 = pd.DataFrame({"user_id": [2, 2]})
    v = Vocabulary.build(d1, spec, row_days=["d1", "d1"])
    # The next version's window holds d1 again and d2: d1 must not be counted a second time.
    window = pd.concat([d1, d2], ignore_index=True)
    v2 = v.grow(window, spec, row_days=["d1", "d1", "d2", "d2"])
    assert v2.fields["user_id"].counts == {1: 2, 2: 2}
    assert v2.fields["user_id"].values == []
    assert v2.counted_days == ["d1", "d2"]
    # Without day labels the whole table is counted (a one-off fit).
    assert v.grow(window, spec).fields["user_id"].counts == {1: 4, 2: 2}
    with pytest.raises(FeatureSpecError, match="row_days has 1 labels"):
        v.grow(window, spec, row_days=["d3"])


def test_counts_and_counted_days_travel_in_the_json():
    v = Vocabulary.build(frame(), SPEC, row_days=["2026-11-01"] * 7)
    data = json.loads(json.dumps(v.to_json()))
    again = Vocabulary.from_json(data)
    assert again.counted_days == ["2026-11-01"]
    assert again.fields["item_id"].counts == {7: 3, 3: 2, 9: 1}
    assert again.to_json() == v.to_json()
    bad = json.loads(json.dumps(data))
    bad["fields"]["item_id"]["count_values"] = [1]
    with pytest.raises(FeatureSpecError, match="count_keys"):
        Vocabulary.from_json(bad)
    bad = json.loads(json.dumps(data))
    bad["counted_days"] = "2026-11-01"
    with pytest.raises(FeatureSpecError, match="counted_days"):
        Vocabulary.from_json(bad)
    # A vocabulary written before counts existed still loads (no counts, no counted days).
    old = {"fields": {"item_id": {"kind": "categorical", "value_type": "int", "values": [7, 3]}}}
    assert Vocabulary.from_json(old).fields["item_id"].counts == {}
