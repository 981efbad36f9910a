"""Fixtures for the inference tests: real images, a real DICOM chest radiograph, and real architectures with
seeded random weights saved to temporary files (no chest X-ray weights are available offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cxrfail.demo import demo_location

#: the demo's radiographs: under ``$CXRFAIL_DEMO_DIR`` when set, else beside the checkout
NIH_IMAGES = demo_location() / "images"
CARD_LABELS = ["Atelectasis", "Cardiomegaly", "Effusion", "", "Pleural_Thickening"]


def pydicom_data_file(name: str) -> Path:
    """A file shipped inside the installed pydicom-data package (found locally; never downloaded)."""
    import data_store  # the import name of the pydicom-data package

    path = Path(data_store.__file__).parent / "data" / name
    if not path.is_file():
        pytest.skip(f"pydicom-data does not ship {name}")
    return path


@pytest.fixture(scope="session")
def nih_images() -> list[Path]:
    """Eight real NIH ChestX-ray14 PNGs (512 x 512, 8-bit grayscale) from the shared data."""
    if not NIH_IMAGES.is_dir():
        pytest.skip(f"shared images not found at {NIH_IMAGES}")
    return sorted(NIH_IMAGES.glob("*.png"))[:8]


@pytest.fixture(scope="session")
def chest_dicom() -> Path:
    """RG1_J2KI.dcm: a real PA chest CR, JPEG 2000, MONOCHROME1, 15 bits stored, window 15000/30000."""
    return pydicom_data_file("RG1_J2KI.dcm")


@pytest.fixture(scope="session")
def chest_dicom_uncompressed() -> Path:
    """RG1_UNCI.dcm: the same radiograph as `chest_dicom`, uncompressed (explicit VR little endian)."""
    return pydicom_data_file("RG1_UNCI.dcm")


def calibrate_batch_norm(module: torch.nn.Module, inputs: torch.Tensor) -> torch.nn.Module:
    """Set every batch norm's running statistics to those of ``inputs`` (N, C, H, W; one forward pass in
    training mode) and return the module in eval mode, so that a network with random weights gives unsaturated
    probabilities on real radiographs."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None  # cumulative average: after one batch, exactly its statistics
    module.train()
    with torch.no_grad():
        module(inputs)
    return module.eval()


@pytest.fixture(scope="session")
def xrv_densenet_weights(tmp_path_factory, nih_images) -> Path:
    """State dict of a torchxrayvision DenseNet-121 (18 outputs) with seed-0 random weights, batch norm statistics
    taken from four real radiographs scaled to [-1024, 1024] at 224 px."""
    import torchxrayvision as xrv

    from cxrfail.inference.cards import Preprocessing, range_normalization
    from cxrfail.inference.images import preprocess, read_image

    torch.manual_seed(0)
    module = xrv.models.DenseNet(weights=None, num_classes=18)
    xrv_input = Preprocessing(224, 224, 1, *range_normalization(-1024, 1024, channels=1))
    calibrate_batch_norm(module, torch.stack([preprocess(read_image(p), xrv_input) for p in nih_images[4:8]]))
    path = tmp_path_factory.mktemp("xrv") / "densenet121-seed0.pt"
    torch.save(module.state_dict(), path)
    return path


def write_card_model(
    folder: Path,
    architecture: str = "densenet121",
    *,
    seed: int = 0,
    input_size: int = 64,
    channels: int = 3,
    weights_format: str = "safetensors",
    **card_fields,
) -> Path:
    """Save a torchvision classifier with seeded random weights and a model card beside it; return the card."""
    from safetensors.torch import save_file

    from cxrfail.inference.models import build_torchvision_model

    folder.mkdir(parents=True, exist_ok=True)
    labels = card_fields.pop("labels", CARD_LABELS)
    torch.manual_seed(seed)
    module = build_torchvision_model(architecture, len(labels), channels)
    weights = folder / f"{architecture}-seed{seed}.{weights_format}"
    if weights_format == "safetensors":
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, weights)
    else:
        torch.save(module.state_dict(), weights)
    card = {
        "name": f"{architecture}-test",
        "architecture": architecture,
        "weights": weights.name,
        "labels": labels,
        "input_size": input_size,
        "resize": input_size + input_size // 8,
        "channels": channels,
        "normalization": "imagenet" if channels == 3 else {"mean": [0.5], "std": [0.25]},
        "activation": "sigmoid",
        **card_fields,
    }
    path = folder / f"{architecture}-card.json"
    path.write_text(json.dumps(card))
    return path


@pytest.fixture
def make_card_model():
    """`write_card_model`, for tests that need several card models or non-default fields."""
    return write_card_model


@pytest.fixture(scope="session")
def card_model(tmp_path_factory) -> Path:
    """A model card for a DenseNet-121 (5 outputs, one unlabelled) at 64 px with seeded random weights.
    Shared by the session: tests that change the card make their own with `make_card_model`."""
    return write_card_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def loaded_card_model(card_model):
    """`card_model` loaded once (building DenseNet-121 costs about a second of CPU)."""
    from cxrfail.inference.models import load_model

    return load_model(card_model)
