"""Model loading for real: torchxrayvision and torchvision architectures with seeded weights saved to files,
TorchScript, safetensors, and refusal of checkpoints that need full unpickling."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import save_file

from cxrfail.inference.errors import InferenceError
from cxrfail.inference.models import (
    EMBEDDED_CARD,
    build_torchvision_model,
    load_model,
    load_xrv_model,
    pull_xrv_weights,
    read_state_dict,
    xrv_weights_path,
)

XRV_ALL_FINDINGS = (
    "Atelectasis",
    "Consolidation",
    "Infiltration",
    "Pneumothorax",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural Effusion",
    "Pneumonia",
    "Pleural Thickening",
    "Cardiomegaly",
    "Nodule",
    "Mass",
    "Hernia",
    "Lung Lesion",
    "Fracture",
    "Lung Opacity",
    "Enlarged Cardiomediastinum",
)


def _probe(channels: int, size: int) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, channels, size, size)


def test_xrv_densenet_from_a_state_dict(xrv_densenet_weights):
    import torchxrayvision as xrv

    model = load_model(f"xrv:densenet121@{xrv_densenet_weights}")
    assert model.name == "xrv-densenet121-res224-all"
    assert model.findings == XRV_ALL_FINDINGS
    assert model.card.preprocessing.input_size == 224 and model.card.preprocessing.channels == 1
    assert model.card.preprocessing.mean == (0.5,) and model.card.preprocessing.std == (1 / 2048,)
    reference = xrv.models.DenseNet(weights=None, num_classes=18).eval()
    reference.load_state_dict(torch.load(xrv_densenet_weights, weights_only=True))
    x = _probe(1, 64) * 2048 - 1024
    with torch.inference_mode():
        torch.testing.assert_close(model.module(x), reference(x))


def test_xrv_weights_with_empty_labels_drop_those_outputs(xrv_densenet_weights):
    model = load_xrv_model("densenet121-res224-chex", xrv_densenet_weights)
    assert len(model.card.labels) == 18
    assert model.findings == (
        "Atelectasis",
        "Consolidation",
        "Pneumothorax",
        "Edema",
        "Pleural Effusion",
        "Pneumonia",
        "Cardiomegaly",
        "Lung Lesion",
        "Fracture",
        "Lung Opacity",
        "Enlarged Cardiomediastinum",
    )
    assert model.output_indices == (0, 1, 3, 4, 7, 8, 10, 14, 15, 16, 17)
    assert load_xrv_model("nih", xrv_densenet_weights).name == "xrv-densenet121-res224-nih"


def test_xrv_weights_from_its_cache_folder_as_pickled_whole_module(tmp_path, xrv_densenet_weights):
    """torchxrayvision's own weights files pickle the whole DenseNet: allowed, its layer classes only."""
    import torchxrayvision as xrv

    module = xrv.models.DenseNet(weights=None, num_classes=18)
    module.load_state_dict(torch.load(xrv_densenet_weights, weights_only=True))
    target = xrv_weights_path("all", tmp_path)
    torch.save(module, target)
    model = load_xrv_model("densenet121-res224-all", cache_dir=tmp_path)
    assert model.card.weights == target
    assert pull_xrv_weights("all", cache_dir=tmp_path) == target  # already there: checked, not downloaded
    x = _probe(1, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model.module(x), module.eval()(x))


def test_xrv_resnet_state_dict_with_wrapper_prefix_and_op_threshs(tmp_path):
    torch.manual_seed(0)
    inner = build_torchvision_model("resnet50", 18, channels=1)
    state = {f"model.{key}": value for key, value in inner.state_dict().items()}
    state["op_threshs"] = torch.rand(18)  # saved by xrv.models.ResNet; cxrfail applies a plain sigmoid
    path = tmp_path / "resnet.pt"
    torch.save(state, path)
    model = load_model(f"xrv:resnet50@{path}")
    assert model.name == "xrv-resnet50-res512-all"
    assert model.card.preprocessing.input_size == 512
    x = _probe(1, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model.module(x), inner.eval()(x))


def test_missing_xrv_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(InferenceError, match=r"no weights file for densenet121-res224-nih.*cxrfail models pull"):
        load_xrv_model("nih", cache_dir=tmp_path)
    with pytest.raises(InferenceError, match="unknown torchxrayvision model 'densenet999'"):
        load_model("xrv:densenet999")


def test_pull_without_network_fails_with_a_clear_message(tmp_path):
    with pytest.raises(InferenceError) as error:
        pull_xrv_weights("nih", cache_dir=tmp_path, url="http://127.0.0.1:9/weights.pt", timeout_s=5)
    message = str(error.value)
    assert "cannot download the densenet121-res224-nih weights from http://127.0.0.1:9/weights.pt" in message
    assert str(xrv_weights_path("nih", tmp_path)) in message
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


@pytest.mark.parametrize(
    ("architecture", "channels", "weights_format"),
    [("densenet121", 3, "safetensors"), ("resnet50", 1, "pt"), ("efficientnet_b0", 3, "pt")],
)
def test_card_state_dict_models(tmp_path, make_card_model, architecture, channels, weights_format):
    card = make_card_model(tmp_path, architecture, channels=channels, weights_format=weights_format)
    model = load_model(card)
    assert model.name == f"{architecture}-test"
    assert model.findings == ("Atelectasis", "Cardiomegaly", "Pleural Effusion", "Pleural Thickening")
    assert model.output_indices == (0, 1, 2, 4)
    torch.manual_seed(0)
    reference = build_torchvision_model(architecture, 5, channels).eval()
    x = _probe(channels, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model.module(x), reference(x))


def test_torchscript_with_embedded_card_and_via_a_card(tmp_path):
    import torchvision

    torch.manual_seed(0)
    module = torchvision.models.mobilenet_v3_small(weights=None, num_classes=2).eval()
    scripted = torch.jit.script(module)
    card = {
        "name": "scripted",
        "labels": ["Edema", "Effusion"],
        "input_size": 64,
        "channels": 3,
        "normalization": "imagenet",
    }
    embedded = tmp_path / "embedded.pt"
    torch.jit.save(scripted, str(embedded), _extra_files={EMBEDDED_CARD: json.dumps(card)})
    model = load_model(embedded, allow_torchscript=True)
    assert model.name == "scripted" and model.card.architecture == "torchscript"
    assert model.findings == ("Edema", "Pleural Effusion")
    x = _probe(3, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model.module(x), module(x))

    bare = tmp_path / "bare.ts"
    torch.jit.save(scripted, str(bare))
    with pytest.raises(InferenceError, match="carries no model card"):
        load_model(bare, allow_torchscript=True)
    card_path = tmp_path / "scripted.yaml"
    card_path.write_text(json.dumps({**card, "architecture": "torchscript", "weights": "bare.ts"}))
    assert load_model(card_path, allow_torchscript=True).findings == ("Edema", "Pleural Effusion")


class _Payload:
    """Unpickling this runs ``touch`` on the marker file: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_checkpoint_that_needs_full_unpickling_is_refused_without_running_it(tmp_path, make_card_model):
    marker = tmp_path / "pwned"
    card = make_card_model(tmp_path, "densenet121", weights_format="pt")
    weights = tmp_path / "densenet121-seed0.pt"
    state = torch.load(weights, weights_only=True)
    torch.save({"state_dict": state, "extra": _Payload(marker)}, weights)
    with pytest.raises(
        InferenceError,
        match=r"refused: the checkpoint needs full unpickling \(it references "
        r"(posix|os)\.system\)",
    ):
        load_model(card)
    assert not marker.exists()


def test_pickled_torchvision_module_is_refused_for_a_card(tmp_path, make_card_model):
    card = make_card_model(tmp_path, "densenet121", weights_format="pt")
    torch.manual_seed(0)
    torch.save(build_torchvision_model("densenet121", 5, 3), tmp_path / "densenet121-seed0.pt")
    with pytest.raises(InferenceError, match="refused.*torchvision.models.densenet.DenseNet.*state_dict"):
        load_model(card)


def test_nested_and_dataparallel_state_dicts_are_unwrapped(tmp_path):
    state = {"module.fc.weight": torch.ones(2, 2), "module.fc.bias": torch.zeros(2)}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "nested.pt")
    assert set(read_state_dict(tmp_path / "nested.pt")) == {"fc.weight", "fc.bias"}
    save_file(state, tmp_path / "flat.safetensors")
    assert set(read_state_dict(tmp_path / "flat.safetensors")) == {"fc.weight", "fc.bias"}


def test_corrupt_and_mismatched_weights_are_reported(tmp_path, make_card_model):
    card = make_card_model(tmp_path, "densenet121")
    weights = tmp_path / "densenet121-seed0.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(InferenceError, match="not a readable safetensors file"):
        load_model(card)
    other = make_card_model(tmp_path / "other", "resnet50", weights_format="pt")
    raw = json.loads(other.read_text())
    other.write_text(json.dumps({**raw, "architecture": "densenet121"}))
    with pytest.raises(InferenceError, match="weights do not fit the architecture"):
        load_model(other)


def test_labels_must_be_known_findings_and_distinct(tmp_path, make_card_model):
    with pytest.raises(InferenceError, match="label 'Broken Heart' .output 1. is not a known finding"):
        load_model(make_card_model(tmp_path / "a", labels=["Edema", "Broken Heart"]))
    with pytest.raises(InferenceError, match="labels 'Effusion' and 'Pleural Effusion' both map onto"):
        load_model(make_card_model(tmp_path / "b", labels=["Effusion", "Pleural Effusion"]))


def test_bad_specs(tmp_path, xrv_densenet_weights):
    with pytest.raises(InferenceError, match="model file not found"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(InferenceError, match="neither a model card nor a TorchScript file.*needs a model card"):
        load_model(xrv_densenet_weights)


def test_half_precision_weights_load_as_float32(tmp_path, make_card_model):
    card = make_card_model(tmp_path, "densenet121")
    weights = tmp_path / "densenet121-seed0.safetensors"
    full = read_state_dict(weights)
    save_file({key: value.half() if value.is_floating_point() else value for key, value in full.items()}, weights)
    model = load_model(card)
    assert {p.dtype for p in model.module.parameters()} == {torch.float32}
    torch.manual_seed(0)
    reference = build_torchvision_model("densenet121", 5, 3).eval()
    x = _probe(3, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model.module(x), reference(x), atol=5e-2, rtol=5e-2)


def test_xrv_weights_table_read_without_import_matches_torchxrayvision():
    import torchxrayvision as xrv

    from cxrfail.inference.models import _parse_xrv_weights_table

    table = _parse_xrv_weights_table()
    assert set(table) == set(xrv.models.model_urls)
    for name, info in xrv.models.model_urls.items():
        for key in ("labels", "input_resolution", "weights_url"):
            assert table[name].get(key) == info.get(key), (name, key)
    assert table["densenet121-res224-nih"] is table["nih"]  # aliases stay one entry


def test_lazy_xrv_model_builds_the_same_network_only_when_asked(xrv_densenet_weights):
    eager = load_model(f"xrv:densenet121@{xrv_densenet_weights}")
    lazy = load_model(f"xrv:densenet121@{xrv_densenet_weights}", lazy=True)
    assert lazy.module is None and lazy.card == eager.card and lazy.weights_digest == eager.weights_digest
    x = torch.randn(2, 1, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(lazy.torch_module()(x), eager.module(x))
    assert lazy.module is lazy.torch_module()  # built once
