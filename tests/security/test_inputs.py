"""Audit rows about untrusted input: file contents never echoed, paths kept inside their roots, size limits,
TorchScript only by opt-in, every bad CLI input is exit 2 with one line."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.cli import main
from cxrfail.cohort import load_generic_csv
from cxrfail.errors import CacheKeyError, CohortError, ConfigError, PathNotAllowedError, PredictionsError
from cxrfail.inference.errors import InferenceError
from cxrfail.inference.images import ImageDecodeError, decode_image, display_png, read_cohort_image
from cxrfail.io import read_input_csv
from cxrfail.predictions import load_predictions_csv
from cxrfail.roots import data_roots, resolve_under_roots

SECRET = "hunter2-very-secret-token"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("cxrfail: error: ") and "Traceback" not in "\n".join(err)
    return err[-1]


def test_a_shell_profile_as_predictions_never_echoes_its_lines(tmp_path):
    profile = tmp_path / ".bashrc"
    profile.write_text(f"# ~/.bashrc: executed by bash(1)\nexport TOKEN={SECRET}\nalias ll='ls -l'\n")
    with pytest.raises(PredictionsError) as info:
        load_predictions_csv(profile)
    assert SECRET not in str(info.value) and "bashrc: executed" not in str(info.value)


def test_a_secrets_file_as_a_cohort_never_echoes_values(tmp_path):
    secrets = tmp_path / "secrets.csv"
    secrets.write_text(f"user,Age,Sex,Edema\nadmin,{SECRET},{SECRET},{SECRET}\nroot,{SECRET},{SECRET},1\n")
    for column_map in (
        {"image_id": "user", "patient_id": "user", "age": "Age"},
        {"image_id": "user", "patient_id": "user", "sex": "Sex"},
        {"image_id": "Age", "patient_id": "user"},
        {"image_id": "user", "patient_id": "user", "Edema": "Edema"},
    ):
        with pytest.raises(CohortError) as info:
            load_generic_csv(secrets, column_map)
        assert SECRET not in str(info.value)


def test_paths_outside_the_roots_are_refused_alike_whether_or_not_they_exist(tmp_path):
    root = tmp_path / "root"
    (root / "ok").mkdir(parents=True)
    (root / "ok" / "a.csv").write_text("x\n")
    (tmp_path / "private.csv").write_text("secret\n")
    (root / "link.csv").symlink_to(tmp_path / "private.csv")
    assert resolve_under_roots(root / "ok" / "a.csv", [root]) == (root / "ok" / "a.csv").resolve()
    messages = []
    for candidate in (
        tmp_path / "private.csv",
        tmp_path / "nope.csv",
        root / "ok" / ".." / ".." / "private.csv",
        root / "link.csv",
        "~/.bashrc",
    ):
        with pytest.raises(PathNotAllowedError) as info:
            resolve_under_roots(candidate, [root])
        messages.append(str(info.value).replace(str(candidate), "<path>"))
    assert len(set(messages)) == 1 and "secret" not in messages[0] and "not found" not in messages[0]


def test_default_roots_and_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("CXRFAIL_DATA_ROOTS", raising=False)
    assert any(root.name == "data" for root in data_roots())
    monkeypatch.setenv("CXRFAIL_DATA_ROOTS", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert data_roots() == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())


def _png(path: Path, size=(40, 30)) -> Path:
    Image.fromarray(np.arange(size[0] * size[1], dtype=np.uint8).reshape(size[1], size[0])).save(path)
    return path


def test_cohort_image_paths_must_stay_in_the_image_folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    _png(images / "a.png")
    _png(tmp_path / "private.png")
    cohort_csv = tmp_path / "cohort.csv"
    cohort_csv.write_text("id,pid,path,Edema\na,p1,a.png,1\nb,p2,../../../../private.png,0\n")
    column_map = {"image_id": "id", "patient_id": "pid", "image_path": "path"}
    with pytest.raises(CohortError, match="outside the image folder.*line 3"):
        load_generic_csv(cohort_csv, column_map, image_dir=images)
    with pytest.raises(PathNotAllowedError):
        read_cohort_image("../private.png", images)
    png = display_png("a.png", images, max_side=20)
    decoded = Image.open(io.BytesIO(png))
    assert decoded.format == "PNG" and max(decoded.size) == 20


def test_pixel_limits_before_decoding(tmp_path, monkeypatch):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    dataset = pydicom.Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    dataset.Rows, dataset.Columns = 15000, 15000  # header claims 225 Mpx; the pixel data is tiny
    dataset.SamplesPerPixel, dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 1, 8, 8, 7
    dataset.PixelRepresentation, dataset.PhotometricInterpretation = 0, "MONOCHROME2"
    dataset.PixelData = b"\0" * 16
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    with pytest.raises(ImageDecodeError, match="above the limit"):
        decode_image(buffer.getvalue(), ".dcm")
    monkeypatch.setenv("CXRFAIL_MAX_PIXELS", "1000")
    with pytest.raises(ImageDecodeError, match="above the limit"):
        decode_image(_png(tmp_path / "big.png", (40, 30)).read_bytes())
    monkeypatch.delenv("CXRFAIL_MAX_PIXELS")
    assert decode_image((tmp_path / "big.png").read_bytes()).shape == (1, 30, 40)


def test_pillows_decompression_bomb_cap_is_cxrfails_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRFAIL_MAX_PIXELS", "600")  # 40 x 30 = 1,200 > 600
    with pytest.raises(ImageDecodeError, match="above the limit of 600 pixels"):
        decode_image(_png(tmp_path / "a.png").read_bytes())
    assert Image.MAX_IMAGE_PIXELS == 600


def test_inflated_csv_size_is_capped(tmp_path, monkeypatch):
    bomb = tmp_path / "cohort.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(b"id,pid,Edema\n")
        row = b"a,p,1\n" * 100_000
        for _ in range(10):  # 6 MB inflated from a few kB
            out.write(row)
    assert bomb.stat().st_size < 100_000
    monkeypatch.setenv("CXRFAIL_MAX_CSV_MB", "1")
    with pytest.raises(CohortError, match="more than 1 MB of text"):
        read_input_csv(bomb)


def test_torchscript_needs_opt_in_and_a_torchscript_name(tmp_path):
    import torch

    from cxrfail.inference.models import EMBEDDED_CARD, load_model

    class Payload(torch.nn.Module):
        def forward(self, x):
            return x

    scripted = torch.jit.script(Payload())
    card = {"name": "payload", "labels": ["Edema"], "input_size": 8, "channels": 1, "normalization": {"range": [0, 1]}}
    path = tmp_path / "model.pt"
    torch.jit.save(scripted, str(path), _extra_files={EMBEDDED_CARD: json.dumps(card)})
    disguised = tmp_path / "model.csv"
    disguised.write_bytes(path.read_bytes())
    with pytest.raises(InferenceError, match="runs code from the file"):
        load_model(path)
    with pytest.raises(InferenceError):
        load_model(disguised, allow_torchscript=True)  # renamed .csv: refused, never loaded
    assert load_model(path, allow_torchscript=True).findings == ("Edema",)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["analyze", "--predictions", "{tmp}"], "not a file"),
        (
            [
                "analyze",
                "--cohort",
                "csv",
                "--cohort-file",
                "{cohort}",
                "--column-map",
                "image_id=id",
                "patient_id=pid",
                "foo=Age",
                "--predictions",
                "{preds}",
            ],
            "neither a cohort field nor a finding",
        ),
        (["analyze", "--folds", "1"], "n_folds"),
        (["analyze", "--calibration-fraction", "0"], "calibration_fraction"),
        (["analyze", "--bootstrap", "0"], "n_bootstrap"),
        (["cache", "clear", "--key", "../somewhere"], "is not a cache key"),
    ],
)
def test_bad_cli_input_is_exit_2_and_one_line(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.setenv("CXRFAIL_CACHE_DIR", str(tmp_path / "cache"))
    outside = tmp_path / "somewhere"
    outside.mkdir()
    (tmp_path / "cohort.csv").write_text("id,pid,Edema\na,p,1\n")
    (tmp_path / "preds.csv").write_text("image_id,Edema\na,0.5\n")
    values = {"tmp": tmp_path, "cohort": tmp_path / "cohort.csv", "preds": tmp_path / "preds.csv"}
    assert main([arg.format(**values) for arg in argv]) == 2
    assert fragment in _one_error_line(capsys)
    assert outside.is_dir()


def test_config_ranges_are_checked_where_the_config_is_made():
    for field, value in [
        ("n_folds", 1),
        ("calibration_fraction", 1.0),
        ("n_bootstrap", 0),
        ("fixed_threshold", 2),
        ("min_overlap", -0.1),
        ("n_folds", 2.5),
        ("age_bins", (60.0, 40.0)),
    ]:
        with pytest.raises(ConfigError, match=field):
            AnalysisConfig(**{field: value})
    assert AnalysisConfig(n_folds=2, calibration_fraction=0.3, n_bootstrap=100).n_folds == 2


def test_cache_keys_never_name_paths(tmp_path):
    from cxrfail.cache import TableStore

    for key in ("../x", "/etc", "a/b", "", "..", "a b"):
        with pytest.raises(CacheKeyError):
            TableStore(tmp_path).path(key)
