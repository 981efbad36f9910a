"""The on-disk result store: round trip, content keys, atomic writes, corrupt entries recomputed."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from cxrfail.cache import TableStore, hash_frame, hash_parts
from cxrfail.manifest import build_manifest, file_sha256


def _tables():
    return {"a": pd.DataFrame({"x": [1.0, 2.0], "name": ["p", "q"]}), "b": pd.DataFrame({"y": [True, False]})}


def test_round_trip(tmp_path):
    store = TableStore(tmp_path)
    store.save("k1", _tables(), {"models": ["m"], "n": np.int64(3)})
    tables, meta = store.load("k1")
    pd.testing.assert_frame_equal(tables["a"], _tables()["a"])
    assert meta["models"] == ["m"] and meta["n"] == 3
    assert store.load("other") is None


def test_hash_changes_with_any_value_or_label():
    frame = pd.DataFrame({"x": [0.1, 0.2]}, index=pd.Index(["a", "b"], name="image_id"))
    changed_value = frame.copy()
    changed_value.iloc[1, 0] = 0.2000001
    changed_index = frame.rename(index={"b": "c"})
    hashes = {
        hash_frame(frame),
        hash_frame(changed_value),
        hash_frame(changed_index),
        hash_frame(frame.rename(columns={"x": "y"})),
    }
    assert len(hashes) == 4
    assert hash_frame(frame) == hash_frame(frame.copy())
    assert hash_parts({"a": 1, "b": 2}) == hash_parts({"b": 2, "a": 1}) != hash_parts({"a": 1, "b": 3})


def test_corrupt_entry_is_a_miss_and_is_removed(tmp_path):
    store = TableStore(tmp_path)
    folder = store.save("k", _tables(), {})
    (folder / "a.parquet").write_bytes(b"PAR1 truncated")
    assert store.load("k") is None
    assert not folder.exists()
    store.save("k", _tables(), {})
    assert store.load("k") is not None


def test_truncated_meta_is_a_miss(tmp_path):
    store = TableStore(tmp_path)
    folder = store.save("k", _tables(), {})
    (folder / "meta.json").write_text('{"tables": ["a"')
    assert store.load("k") is None


def test_concurrent_writers_of_one_key_leave_one_complete_entry(tmp_path):
    store = TableStore(tmp_path)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: store.save("same", _tables(), {"w": 1}), range(8)))
    entries = sorted(p.name for p in store.folder.iterdir())
    assert entries == ["same"]  # no staging folders left behind
    tables, _ = store.load("same")
    assert set(tables) == {"a", "b"}
    assert store.clear() == 1 and store.load("same") is None


def test_manifest_hashes_inputs(tmp_path):
    source = tmp_path / "preds.csv"
    source.write_text("image_id,Edema\na,0.1\n")
    manifest = build_manifest([source, tmp_path / "missing.csv"], config={"seed": 3}, seed=3, extra={"k": "v"})
    assert manifest["inputs"][0]["sha256"] == file_sha256(source)
    assert manifest["inputs"][0]["bytes"] == source.stat().st_size
    assert manifest["inputs"][1]["sha256"] is None
    assert manifest["versions"]["pandas"] == pd.__version__
    json.dumps(manifest)


def test_manifest_is_strict_json_with_missing_values_and_numpy_types(tmp_path):
    extra = {
        "cohort": {
            "sex": {"M": np.int64(2), pd.NA: 1},
            "age_median": float("nan"),
            "missing": pd.NA,
            "views": np.array(["AP", "PA"]),
            "folder": tmp_path,
            "n": np.int64(5),
        },
    }
    manifest = build_manifest([], config={"bins": (40.0, 60.0)}, seed=1, extra=extra)
    decoded = json.loads(json.dumps(manifest, allow_nan=False))
    assert decoded["cohort"] == {
        "sex": {"M": 2, "unknown": 1},
        "age_median": None,
        "missing": None,
        "views": ["AP", "PA"],
        "folder": str(tmp_path),
        "n": 5,
    }
    assert decoded["config"] == {"bins": [40.0, 60.0]}
