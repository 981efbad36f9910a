"""Model cards: JSON and YAML, preprocessing fields, and errors that name the field."""

from __future__ import annotations

import json

import pytest

from cxrfail.inference.cards import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, load_model_card
from cxrfail.inference.errors import InferenceError

YAML_CARD = """\
name: my-resnet
architecture: resnet50
weights: weights/resnet50.safetensors
labels: [Effusion, "", Lung Opacity]
input_size: 320
resize: 352
channels: 1
normalization: {range: [-1024, 1024]}
activation: softmax
"""


def test_yaml_card_is_read_with_every_field(tmp_path):
    path = tmp_path / "card.yaml"
    path.write_text(YAML_CARD)
    card = load_model_card(path)
    assert card.name == "my-resnet"
    assert card.architecture == "resnet50"
    assert card.weights == tmp_path / "weights" / "resnet50.safetensors"
    assert card.labels == ("Effusion", "", "Lung Opacity")
    assert card.activation == "softmax"
    assert card.preprocessing == Preprocessing(
        input_size=320, resize_size=352, channels=1, mean=(0.5,), std=(1 / 2048,)
    )


def test_json_card_defaults(tmp_path):
    path = tmp_path / "densenet.json"
    path.write_text(
        json.dumps(
            {
                "architecture": "densenet121",
                "weights": "w.pt",
                "labels": ["Edema"],
                "input_size": 224,
                "normalization": "imagenet",
            }
        )
    )
    card = load_model_card(path)
    assert card.name == "densenet"
    assert card.activation == "sigmoid"
    assert card.preprocessing == Preprocessing(224, 224, 3, IMAGENET_MEAN, IMAGENET_STD)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"architecture": "vgg16"}, "architecture 'vgg16' is not supported"),
        ({"colour": 3}, "unknown model card fields: colour"),
        ({"labels": "Edema"}, "labels must be a list"),
        ({"input_size": "224"}, "input_size must be a whole number"),
        ({"resize": 200}, "resize (200) must be at least input_size (224)"),
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"normalization": {"mean": [0.5], "std": [0.2]}}, "normalization {'mean': [0.5], 'std': [0.2]} is not"),
        ({"normalization": {"range": [1, -1]}}, "range must be increasing"),
        ({"activation": "relu"}, "activation must be one of sigmoid, softmax, none"),
        ({"labels": ["", ""]}, "has no labelled output"),
        ({"weights": None}, "names no weights file"),
    ],
)
def test_invalid_card_is_refused_naming_the_problem(tmp_path, change, fragment):
    raw = {
        "architecture": "densenet121",
        "weights": "w.pt",
        "labels": ["Edema"],
        "input_size": 224,
        "channels": 3,
        "normalization": "imagenet",
        **change,
    }
    path = tmp_path / "card.json"
    path.write_text(json.dumps({k: v for k, v in raw.items() if v is not None}))
    with pytest.raises(InferenceError) as error:
        load_model_card(path)
    assert fragment in str(error.value)


def test_unparseable_card_names_the_file(tmp_path):
    path = tmp_path / "card.yaml"
    path.write_text("labels: [unclosed\n")
    with pytest.raises(InferenceError, match="card.yaml: the model card is not valid YAML"):
        load_model_card(path)
