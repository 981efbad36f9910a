"""The ``cxrfail infer``, ``models pull`` and ``cache`` subcommands through the real entry point, in-process."""

from __future__ import annotations

import shutil

import pytest

from cxrfail.cli import main
from cxrfail.predictions import load_predictions_csv


@pytest.fixture
def images(tmp_path, nih_images):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in nih_images[:3]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.png").write_bytes(nih_images[0].read_bytes()[:500])
    return folder


def _error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("cxrfail: error: ")
    return lines[-1]


def test_infer_writes_an_importable_csv_and_reuses_the_cache(tmp_path, images, card_model, capsys, monkeypatch):
    monkeypatch.setenv("CXRFAIL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "preds.csv"
    args = ["infer", "--model", card_model, "--images", images, "--out", out, "--batch-size", "2", "--num-workers", "0"]
    assert main([str(a) for a in args]) == 0
    captured = capsys.readouterr()
    assert "warning: skipped" in captured.err and "broken.png: image decoding failed" in captured.err
    assert "3 of 4 images predicted (0 from cache, 3 computed" in captured.out
    predictions = load_predictions_csv(out)
    assert sorted(predictions.probabilities.index) == sorted(p.name for p in images.glob("0*.png"))
    assert predictions.findings == ("Atelectasis", "Cardiomegaly", "Pleural Effusion", "Pleural Thickening")

    assert main([str(a) for a in args]) == 0
    assert "(3 from cache, 0 computed" in capsys.readouterr().out

    assert main(["cache", "ls"]) == 0
    listing = capsys.readouterr().out
    assert "densenet121-test (fp32)" in listing and str(tmp_path / "cache" / "inference") in listing
    key = listing.splitlines()[1].split()[0]
    assert main(["cache", "clear", "--key", key]) == 0
    assert "removed 1 cached models" in capsys.readouterr().out
    assert main(["cache", "clear", "--key", key]) == 2
    assert f"no cached model with key '{key}'" in _error_line(capsys)
    assert main(["cache", "ls", "--cache-dir", str(tmp_path / "elsewhere")]) == 0
    assert "no cached predictions" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["infer", "--model", "xrv:densenet999", "--images", ".", "--out", "x.csv"], "unknown torchxrayvision model"),
        (["infer", "--model", "missing-card.yaml", "--images", ".", "--out", "x.csv"], "model file not found"),
        (["models", "pull", "nih", "--url", "http://127.0.0.1:9/w.pt"], "cannot download the densenet121-res224-nih"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, monkeypatch, capsys, args, fragment):
    monkeypatch.chdir(tmp_path)
    if args[0] == "models":
        args = [*args, "--dir", str(tmp_path / "weights")]
    assert main(args) == 2
    assert fragment in _error_line(capsys)


def test_infer_refuses_an_unavailable_device_and_an_empty_folder(tmp_path, card_model, capsys):
    import torch

    empty = tmp_path / "empty"
    empty.mkdir()
    common = ["infer", "--model", str(card_model), "--out", str(tmp_path / "p.csv"), "--no-cache"]
    assert main([*common, "--images", str(empty)]) == 2
    assert "no PNG, JPEG or DICOM images in the folder" in _error_line(capsys)
    if not torch.cuda.is_available():
        assert main([*common, "--images", str(empty), "--device", "cuda"]) == 2
        assert "device 'cuda' is not available" in _error_line(capsys)


def test_infer_with_a_cached_export_imports_no_torchvision(tmp_path, nih_images, xrv_densenet_weights):
    """With the model's ONNX export cached, ``cxrfail infer`` runs it without building the torch network: it
    imports neither torchxrayvision nor torchvision, nor the torch._dynamo that torchvision's ops pull in."""
    import subprocess
    import sys

    pytest.importorskip("onnxruntime")
    folders = [tmp_path / "first", tmp_path / "second"]
    for folder, part in zip(folders, (nih_images[:2], nih_images[2:3])):
        folder.mkdir()
        for path in part:
            shutil.copy(path, folder / path.name)
    command = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "cxrfail.cli",
        "infer",
        "--model",
        f"xrv:densenet121@{xrv_densenet_weights}",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--num-workers",
        "0",
        "--backend",
        "onnxruntime",
        "--device",
        "cpu",
    ]
    runs = [
        subprocess.run(
            [*command, "--images", str(folder), "--out", str(tmp_path / f"{folder.name}.csv")],
            capture_output=True,
            text=True,
            timeout=600,
        )
        for folder in folders
    ]
    for completed in runs:
        assert completed.returncode == 0, completed.stderr[-2000:]

    def imported(completed) -> set[str]:
        return {
            line.rsplit("|", 1)[-1].strip() for line in completed.stderr.splitlines() if line.startswith("import time:")
        }

    assert "torchxrayvision" in imported(runs[0])  # the first run builds and exports the network
    assert not {"torchxrayvision", "torchvision", "torch._dynamo"} & imported(runs[1])
