"""Audit rows that held and must keep holding: pickled checkpoints and YAML ``!!python`` tags are refused
without running anything. (Inference-cache corruption, 4 concurrent writers and Ctrl-C resume are tried in
tests/inference/test_inference_engine.py; the export zip's names in tests/test_export.py.)"""

from __future__ import annotations

import os

import pytest
import torch

from cxrfail.inference.cards import load_model_card
from cxrfail.inference.errors import InferenceError
from cxrfail.inference.models import read_state_dict


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickled_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    checkpoint = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(1), "payload": _RunsCode(str(marker))}, checkpoint)
    with pytest.raises(InferenceError, match="refused: the checkpoint needs full unpickling"):
        read_state_dict(checkpoint)
    assert not marker.exists()


def test_a_yaml_card_with_python_tags_is_refused(tmp_path):
    marker = tmp_path / "ran"
    card = tmp_path / "card.yaml"
    card.write_text(f"name: !!python/object/apply:os.mkdir ['{marker}']\nlabels: [Edema]\n")
    with pytest.raises(InferenceError):
        load_model_card(card)
    assert not marker.exists()
