"""Audit rows about caches and outputs, by fault injection: damaged entries are recomputed, never served; an
unwritable cache or report folder loses no work and leaves nothing half written; exports are inert."""

from __future__ import annotations

import errno
import json
import logging
import os

import pandas as pd
import pytest

from cxrfail import files
from cxrfail.cache import META_FILE, TableStore, sealed_json
from cxrfail.export import inert_csv_frame, table_bytes
from cxrfail.figures import escape as escape_label


def _tables():
    return {"rates": pd.DataFrame({"model": ["m"], "auroc": [0.8125]})}


def _flip_one_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["bit_flip", "truncate", "missing_key", "missing_table"])
def test_a_damaged_cached_table_is_dropped_never_served(tmp_path, caplog, damage):
    store = TableStore(tmp_path)
    folder = store.save("k", _tables(), {"models": ["m"]})
    table_file = folder / "rates.parquet"
    if damage == "bit_flip":
        _flip_one_bit(table_file)
    elif damage == "truncate":
        table_file.write_bytes(table_file.read_bytes()[:-7])
    elif damage == "missing_key":
        meta = json.loads((folder / META_FILE).read_text())
        del meta["sha256"]
        (folder / META_FILE).write_text(json.dumps(meta))
    else:
        table_file.unlink()
    with caplog.at_level(logging.WARNING, logger="cxrfail.cache"):
        assert store.load("k") is None
    assert "dropping damaged cache entry" in caplog.text and not folder.exists()
    store.save("k", _tables(), {"models": ["m"]})
    assert store.load("k")[0]["rates"]["auroc"].iloc[0] == 0.8125


def _raise_enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_unwritable_cache_is_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(files.os, "rename", _raise_enospc)
    with caplog.at_level(logging.WARNING, logger="cxrfail.cache"):
        assert TableStore(tmp_path).save("k", _tables(), {}) is None
    assert "cannot be written (No space left on device)" in caplog.text
    assert [p for p in (tmp_path / "analysis").iterdir()] == []  # no staging folder left


def test_staged_folder_leaves_the_target_untouched_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "report"
    target.mkdir()
    (target / "old.csv").write_text("old")
    with pytest.raises(OSError):
        with files.staged_folder(target) as staging:
            (staging / "flip.csv").write_text("")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert [p.name for p in target.iterdir()] == ["old.csv"]
    with files.staged_folder(target) as staging:
        (staging / "new.csv").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    files.atomic_write_bytes(path, b"old")
    monkeypatch.setattr(files.os, "replace", _raise_enospc)
    with pytest.raises(OSError):
        files.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def _tiny_analysis(folder) -> list[str]:
    """``cxrfail analyze`` arguments for a tiny CSV cohort (80 rows, one per patient) and one model, written
    into ``folder``; a light configuration without figures. The caller adds the cache and output options."""
    (folder / "cohort.csv").write_text("id,pid,Edema\n" + "".join(f"i{n},p{n},{n % 2}\n" for n in range(80)))
    (folder / "m.csv").write_text("image_id,Edema\n" + "".join(f"i{n},{(n % 7) / 7:.3f}\n" for n in range(80)))
    return [
        "analyze",
        "--cohort",
        "csv",
        "--cohort-file",
        str(folder / "cohort.csv"),
        "--column-map",
        "image_id=id",
        "patient_id=pid",
        "--predictions",
        str(folder / "m.csv"),
        "--findings",
        "Edema",
        "--feature-sets",
        "own",
        "--bootstrap",
        "100",
        "--folds",
        "2",
        "--min-subgroup-n",
        "5",
        "--no-figures",
    ]


def test_report_on_a_full_disk_exits_2_with_one_line_and_leaves_no_folder(tmp_path):
    """A real write failure: the CLI runs with a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored), so writing
    the first table larger than 4 KB fails with EFBIG, as on a full disk."""
    import resource
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    argv = [*_tiny_analysis(tmp_path), "--no-cache", "--out", str(out)]

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    completed = subprocess.run(
        [sys.executable, "-m", "cxrfail.cli", *argv],
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=600,
    )
    assert completed.returncode == 2, completed.stderr
    err = completed.stderr.strip().splitlines()
    assert err[-1].startswith("cxrfail: error: ") and "could not be written" in err[-1], err[-1]
    assert "Traceback" not in completed.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["cohort.csv", "m.csv"]


@pytest.mark.parametrize("damage", ["truncated_index", "missing_key", "bit_flip"])
def test_a_damaged_figure_pack_is_dropped(tmp_path, caplog, damage):
    from cxrfail.report import PACK_INDEX, _verified_pack

    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "a.html").write_text("<html>figure</html>")
    index = {"files": {"a": ["a.html"]}, "note": None, "sha256": {"a.html": files.file_sha256(pack / "a.html")}}
    (pack / PACK_INDEX).write_text(sealed_json(index))
    assert _verified_pack(pack) == index
    if damage == "truncated_index":
        (pack / PACK_INDEX).write_text(json.dumps(index)[:-9])
    elif damage == "missing_key":
        (pack / PACK_INDEX).write_text(json.dumps({"files": index["files"], "note": None}))
    else:
        _flip_one_bit(pack / "a.html")
    with caplog.at_level(logging.WARNING, logger="cxrfail.report"):
        assert _verified_pack(pack) is None
    assert "dropping damaged figure pack" in caplog.text and not pack.exists()


def test_exported_csv_cells_are_formula_inert():
    frame = pd.DataFrame(
        {
            "model": ["=cmd|' /C calc'!A0", "+1", "-x", "@SUM(A1)", "\tx", "plain"],
            "view": ['=HYPERLINK("http://x")', "PA", "AP", "PA", "AP", "PA"],
            "delta_f1": [-0.5, 0.1, 0.2, 0.3, 0.4, 0.5],
        }
    )
    inert = inert_csv_frame(frame)
    assert inert["model"].tolist() == ["'=cmd|' /C calc'!A0", "'+1", "'-x", "'@SUM(A1)", "'\tx", "plain"]
    assert inert["view"].iloc[0].startswith("'=") and inert["delta_f1"].tolist() == frame["delta_f1"].tolist()
    text = table_bytes(frame).decode()
    assert "\n=" not in text and ",=" not in text and "-0.5" in text


def test_labels_are_html_escaped():
    assert escape_label('<a href="http://x">m</a>') == "&lt;a href=&quot;http://x&quot;&gt;m&lt;/a&gt;"
    assert escape_label("DenseNet & co") == "DenseNet &amp; co"


def test_stale_upload_folders_are_removed(tmp_path):
    fresh = tmp_path / f"{files.UPLOAD_PREFIX}fresh"
    stale = tmp_path / f"{files.UPLOAD_PREFIX}stale"
    other = tmp_path / "someone-else"
    for folder in (fresh, stale, other):
        folder.mkdir()
        (folder / "a.csv").write_text("x")
    os.utime(stale, (0, 0))
    assert files.cleanup_stale_uploads(tmp_path, older_than_s=3600) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, other.name])
    assert files.cleanup_stale_uploads(tmp_path) == 1 and other.exists()


def test_an_unwritable_prediction_cache_is_a_warning(tmp_path, monkeypatch, caplog):
    import numpy as np

    from cxrfail.inference.cache import PredictionCache

    cache = PredictionCache(tmp_path)
    monkeypatch.setattr(files.os, "replace", _raise_enospc)
    with caplog.at_level(logging.WARNING, logger="cxrfail.cache"):
        cache.store("k", {"model": "m"}, ["Edema"], ["h1"], np.array([[0.5]]))
    assert "cannot be written" in caplog.text
    monkeypatch.undo()
    assert cache.lookup("k", ["Edema"], ["h1"]) == {}
    cache.store("k", {"model": "m"}, ["Edema"], ["h1"], np.array([[0.5]]))
    assert cache.lookup("k", ["Edema"], ["h1"])["h1"].tolist() == [0.5]


def test_a_cli_file_error_is_exit_2_and_one_line(tmp_path, capsys):
    from cxrfail.cli import main

    assert main(["analyze", "--predictions", str(tmp_path / "absent.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cxrfail: error: ") and "file not found" in err[-1]


def test_analysis_and_report_complete_when_the_cache_folder_cannot_be_written(tmp_path, capsys):
    from cxrfail.cli import main

    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    out = tmp_path / "out"
    argv = [*_tiny_analysis(tmp_path), "--cache-dir", str(not_a_folder), "--out", str(out)]
    assert main(argv) == 0
    assert (out / "manifest.json").is_file() and (out / "tables" / "flip.csv").stat().st_size > 0
    assert not_a_folder.read_text().startswith("a file")
