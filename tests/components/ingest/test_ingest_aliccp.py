"""Ali-CCP files (written here in the data set's exact byte format) -> labeled samples."""

from __future__ import annotations

import datetime as dt

from ingest_helpers import read_dir

from components.ingest import run_aliccp_ingest
from components.ingest.aliccp import COMMON, SKELETON
from taml.core import layout as L

DAY = dt.date(2026, 11, 1)


def feats(*pairs: tuple[str, int]) -> str:
    return "\x01".join(f"{f}\x02{i}\x031.0" for f, i in pairs)


def skel(sid, click, conv, cfi, *pairs, num=None) -> str:
    return f"{sid},{click},{conv},{cfi},{len(pairs) if num is None else num},{feats(*pairs)}"


def common(cfi, *pairs) -> str:
    return f"{cfi},{len(pairs)},{feats(*pairs)}"


def test_aliccp_samples_and_dead_letters(tmp_path, ingest_config):
    item = [
        ("205", 11),
        ("206", 12),
        ("207", 13),
        ("216", 14),
        ("508", 15),
        ("509", 16),
        ("702", 17),
        ("301", 1),
    ]
    sk_lines = [
        skel(1, 1, 1, "a1", *item, ("853", 21), ("853", 22), ("210", 99)),  # 853 twice: the first is kept
        skel(2, 1, 0, "a1", *item),
        skel(3, 0, 0, "b2", ("205", 31)),
        skel(4, 0, 1, "a1", *item),  # conversion without click
        "5,0,0,a1",  # too few columns
        skel(6, 0, 0, "a1", ("205", 1), num=3),  # feature_num disagrees
        "7,0,0,a1,1,205\x0211",  # entry without its value
        skel(8, 0, 0, "zz", ("205", 1)),  # no common features row
        skel(9, 2, 0, "a1", ("205", 1)),  # click not 0/1
    ]
    user = [
        ("101", 7),
        ("121", 1),
        ("122", 2),
        ("124", 3),
        ("125", 4),
        ("126", 5),
        ("127", 6),
        ("128", 8),
        ("129", 9),
    ]
    cf_lines = [
        common("a1", *user, ("109_14", 5)),
        common("b2", ("101", 8)),
        common("a1", ("101", 999)),  # repeated index: the first row stands
        "c3,x,",  # malformed
    ]
    sk = tmp_path / "sample_skeleton_test.csv"
    cf = tmp_path / "common_features_test.csv"
    sk.write_bytes(("\n".join(sk_lines) + "\n").encode())
    cf.write_bytes(("\n".join(cf_lines)).encode())  # no final newline

    res = run_aliccp_ingest(ingest_config, DAY, str(tmp_path / "data"), str(sk), str(cf))
    p = L.partition(DAY)
    assert res.manifest["sources"][SKELETON][p] == {
        "read": 9,
        "accepted": 3,
        "other_day": 0,
        "dead_letter": {L.CONVERSION_WITHOUT_CLICK: 1, L.MALFORMED_LINE: 4, L.MISSING_FIELD: 1},
    }
    assert res.manifest["sources"][COMMON][p] == {
        "read": 4,
        "accepted": 2,
        "other_day": 0,
        "dead_letter": {L.DUPLICATE_EVENT: 1, L.MALFORMED_LINE: 1},
    }
    rows = {
        r["impression_id"]: r
        for r in read_dir(L.curated_dir(str(tmp_path / "data"), "samples", DAY)).to_pylist()
    }
    assert set(rows) == {"1", "2", "3"}
    r1 = rows["1"]
    assert (r1["click"], r1["conversion"], r1["user_id"], r1["item_id"]) == (1, 1, 7, 11)
    assert r1["f_853"] == 21 and r1["f_129"] == 9 and r1["f_301"] == 1
    assert rows["3"]["user_id"] == 8 and rows["3"]["f_206"] is None
    assert r1["event_timestamp"] == dt.datetime(2026, 11, 1, tzinfo=dt.UTC) and r1["position"] is None
    dead = read_dir(L.curated_dir(str(tmp_path / "data"), "dead_letter", DAY)).to_pylist()
    by_line = {(d["source"], d["line_number"]): d for d in dead}
    assert by_line[(SKELETON, 8)]["reason"] == L.MISSING_FIELD
    assert by_line[(SKELETON, 8)]["raw"] == sk_lines[7].encode()  # the \x01\x02\x03 bytes verbatim
    assert by_line[(COMMON, 3)]["raw"] == cf_lines[2].encode()
