"""Issue 21 items 3 and 7: every file a model SPEC or card names is confined to the roots when it is opened (the
card's ``weights:`` included); TorchScript loads only from the model roots; a file that is not a checkpoint is
one line and exit 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from cxrfail.cli import main
from cxrfail.errors import CxrfailInputError, PathNotAllowedError
from cxrfail.inference.models import EMBEDDED_CARD, load_model

CARD = {"labels": ["Edema"], "input_size": 8, "channels": 1, "normalization": {"range": [0, 1]}}


class _Identity(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


def _torchscript(path: Path) -> Path:
    torch.jit.save(torch.jit.script(_Identity()), str(path), _extra_files={EMBEDDED_CARD: json.dumps(CARD)})
    return path


@pytest.fixture
def roots(tmp_path):
    data, models, outside = tmp_path / "data", tmp_path / "models", tmp_path / "outside"
    for folder in (data, models, outside):
        folder.mkdir()
    return data, models, outside


def _card(folder: Path, **fields) -> Path:
    path = folder / "card.json"
    path.write_text(json.dumps({**CARD, **fields}))
    return path


def test_a_card_in_a_model_root_cannot_load_torchscript_from_outside_every_root(roots):
    data, models, outside = roots
    script = _torchscript(outside / "payload.pt")
    card = _card(models, architecture="torchscript", weights=str(script))
    with pytest.raises(PathNotAllowedError):
        load_model(card, allow_torchscript=True, roots=(data, models), torchscript_roots=(models,))
    inside = _card(models, architecture="torchscript", weights=str(_torchscript(models / "ok.pt")))
    assert load_model(inside, allow_torchscript=True, roots=(data, models), torchscript_roots=(models,)).findings == (
        "Edema",
    )


def test_torchscript_from_a_data_root_is_refused(roots):
    data, models, _ = roots
    card = _card(data, architecture="torchscript", weights=str(_torchscript(data / "payload.pt")))
    with pytest.raises(CxrfailInputError, match="outside the folders the operator allowed for it"):
        load_model(card, allow_torchscript=True, roots=(data, models), torchscript_roots=(models,))


def test_a_card_under_a_data_root_cannot_probe_server_paths(roots):
    data, models, _ = roots
    messages = set()
    for target in ("/etc/nonexistent-file", "/etc/passwd", "/proc/self/environ", "../outside/x.pt"):
        card = _card(data, architecture="densenet121", weights=target)
        with pytest.raises(PathNotAllowedError) as info:
            load_model(card, roots=(data, models), torchscript_roots=(models,))
        messages.add((info.value.problem, info.value.fix))
        assert "root" not in str(info.value.path) or target in str(info.value.path)
    assert len(messages) == 1


def test_a_text_file_as_xrv_weights_is_one_line_and_exit_2(tmp_path, capsys):
    weird = tmp_path / "weird.pt"
    weird.write_text("just some text\n" * 20)
    images = tmp_path / "images"  # an image to predict: the weights are read when the network is first needed
    images.mkdir()
    Image.new("L", (64, 64), 128).save(images / "one.png")
    status = main(
        [
            "infer",
            "--model",
            f"xrv:densenet121@{weird}",
            "--images",
            str(images),
            "--out",
            str(tmp_path / "out.csv"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err[-1].startswith("cxrfail: error: ") and "not a readable checkpoint" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_a_nul_byte_in_a_model_path_is_one_line(tmp_path, capsys):
    assert main(["infer", "--model", "card\0.json", "--images", str(tmp_path), "--out", str(tmp_path / "o.csv")]) == 2
    assert capsys.readouterr().err.strip().startswith("cxrfail: error: ")
