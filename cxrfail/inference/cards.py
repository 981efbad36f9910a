"""Model cards: what a model predicts and the exact preprocessing it was trained with.

A card is a small JSON or YAML file::

    name: my-densenet                # optional display name (default: the card's file stem)
    architecture: densenet121        # densenet121, resnet50, efficientnet_b0 ... b7, efficientnet_v2_s/m/l,
                                     # or torchscript
    weights: densenet121.safetensors # state dict (.safetensors, .pt, .pth) or TorchScript file, relative to the card
    labels: [Atelectasis, Cardiomegaly, Effusion]   # one per model output, in output order; "" = unused output
    input_size: 224                  # side of the square model input, pixels
    resize: 256                      # optional: shorter image side before the centre crop (default input_size)
    channels: 3                      # 1 (grayscale) or 3 (grayscale replicated / RGB)
    normalization: imagenet          # imagenet | {mean: [...], std: [...]} | {range: [-1024, 1024]}
    activation: sigmoid              # sigmoid (default) | softmax | none (the model already outputs probabilities)

Preprocessing is always: decode to intensities in [0, 1], resize (bilinear, antialiased) so the shorter side is
``resize`` pixels, centre-crop ``input_size`` x ``input_size``, match ``channels``, then
``(x - mean) / std`` per channel. ``{range: [lo, hi]}`` maps [0, 1] linearly onto [lo, hi] (torchxrayvision
models expect [-1024, 1024]).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from cxrfail.inference.errors import InferenceError

#: Architectures a card may name for a state dict (built with torchvision, ``weights=None``), plus TorchScript.
TORCHVISION_ARCHITECTURES: tuple[str, ...] = (
    "densenet121",
    "resnet50",
    *(f"efficientnet_b{i}" for i in range(8)),
    "efficientnet_v2_s",
    "efficientnet_v2_m",
    "efficientnet_v2_l",
)
TORCHSCRIPT = "torchscript"
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "softmax", "none")
CARD_SUFFIXES: tuple[str, ...] = (".json", ".yaml", ".yml")
#: How a model can be named (the CLI's ``--model SPEC``); see `cxrfail.inference.models`.
SPEC_HELP = (
    "SPEC is xrv:NAME[@weights.pt], a TorchScript file with an embedded model card, or a model card (.json, .yaml)"
)
#: Numeric precisions a model can run at: auto (fp32 on CPU, bf16 or fp16 autocast on CUDA) or forced.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
#: Inference backends: ``auto`` picks ONNX Runtime on CPU in fp32 when installed, else torch.
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnxruntime")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_CARD_FIELDS = {
    "name",
    "architecture",
    "weights",
    "labels",
    "input_size",
    "resize",
    "channels",
    "normalization",
    "activation",
}


@dataclass(frozen=True)
class Preprocessing:
    """How one decoded image (intensities in [0, 1]) becomes one model input of shape
    (channels, input_size, input_size), float32.

    Attributes:
        input_size: side of the square model input, pixels.
        resize_size: length of the shorter image side after resizing, before the centre crop, pixels
            (>= input_size).
        channels: 1 or 3 input channels.
        mean, std: per-channel normalisation, ``(x - mean) / std`` on intensities in [0, 1]; one value per channel.
    """

    input_size: int
    resize_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.input_size < 1:
            raise InferenceError(f"input_size must be a positive number of pixels, got {self.input_size}")
        if self.resize_size < self.input_size:
            raise InferenceError(
                f"resize ({self.resize_size}) must be at least input_size ({self.input_size}): the centre crop "
                "is taken from the resized image"
            )
        if self.channels not in (1, 3):
            raise InferenceError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise InferenceError(
                f"normalization needs one mean and one std per channel ({self.channels}), got "
                f"{len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise InferenceError(f"normalization std must be positive, got {list(self.std)}")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description, part of the cache key."""
        return asdict(self)


def range_normalization(low: float, high: float, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) that map intensities [0, 1] linearly onto [low, high], one value per channel."""
    if not high > low:
        raise InferenceError(f"normalization range must be increasing, got [{low}, {high}]")
    span = float(high) - float(low)
    return (-float(low) / span,) * channels, (1.0 / span,) * channels


@dataclass(frozen=True)
class ModelCard:
    """What a model is and predicts.

    Attributes:
        name: display name of the model.
        architecture: one of `TORCHVISION_ARCHITECTURES`, ``torchscript``, or ``xrv:<weights name>`` for
            torchxrayvision models (built from their name, no card file).
        labels: one label per model output, in output order; ``""`` marks an output to drop.
        preprocessing: the model's input preprocessing.
        activation: applied to the raw outputs: ``sigmoid``, ``softmax`` (over all outputs) or ``none``.
        weights: the weights (or TorchScript) file, when the card names one.
    """

    name: str
    architecture: str
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    activation: str = "sigmoid"
    weights: Path | None = None

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise InferenceError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if not any(self.labels):
            raise InferenceError(f"model {self.name!r} has no labelled output")


def read_card_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a JSON or YAML card file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InferenceError(f"cannot read the model card ({exc.strerror or exc})", path=path) from None
    return card_mapping(data, path)


def card_mapping(data: bytes, path: Path) -> dict[str, Any]:
    """The raw mapping in a card file's bytes (``path`` names it and gives its format by suffix)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InferenceError("the model card is not UTF-8 text", path=path) from None
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0]
        raise InferenceError(
            f"the model card is not valid {path.suffix.lstrip('.').upper()} ({reason})", path=path
        ) from None
    if not isinstance(raw, dict):
        raise InferenceError(
            "a model card must be a mapping of fields",
            path=path,
            fix=f"Give at least: {', '.join(sorted(_CARD_FIELDS - {'name', 'resize'}))}",
        )
    return raw


def load_model_card(path: str | Path) -> ModelCard:
    """Read and validate a JSON or YAML model card; ``weights`` is resolved relative to the card's folder."""
    path = Path(path)
    return parse_model_card(read_card_file(path), source=path)


def parse_card_text(data: bytes, path: Path) -> ModelCard:
    """Validate a card from its file's bytes (read by the caller, e.g. through a confined descriptor)."""
    return parse_model_card(card_mapping(data, path), source=path)


def parse_model_card(raw: dict[str, Any], *, source: Path, default_architecture: str | None = None) -> ModelCard:
    """Validate the fields of a card read from ``source`` (a card file, or a TorchScript file embedding one).

    ``default_architecture`` fills ``architecture`` when the card leaves it out (``torchscript`` for an embedded
    card).
    """
    unknown = sorted(set(raw) - _CARD_FIELDS)
    if unknown:
        raise InferenceError(
            f"unknown model card fields: {', '.join(unknown)}",
            path=source,
            fix=f"Known fields: {', '.join(sorted(_CARD_FIELDS))}",
        )
    architecture = raw.get("architecture", default_architecture)
    if architecture not in (*TORCHVISION_ARCHITECTURES, TORCHSCRIPT):
        raise InferenceError(
            f"architecture {architecture!r} is not supported",
            path=source,
            fix=f"Use one of {', '.join(TORCHVISION_ARCHITECTURES)} or {TORCHSCRIPT}",
        )
    labels = raw.get("labels")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise InferenceError("labels must be a list of finding names, one per model output", path=source)
    channels = _integer(raw, "channels", source, default=3)
    if channels not in (1, 3):
        raise InferenceError(f"channels must be 1 or 3, got {channels}", path=source)
    input_size = _integer(raw, "input_size", source)
    try:
        preprocessing = Preprocessing(
            input_size=input_size,
            resize_size=_integer(raw, "resize", source, default=input_size),
            channels=channels,
            **_normalization(raw.get("normalization"), channels, source),
        )
    except InferenceError as exc:
        if exc.path is not None:
            raise
        raise InferenceError(exc.problem, path=source) from None
    weights = raw.get("weights")
    if weights is not None and (not isinstance(weights, str) or "\0" in weights or not weights.strip()):
        raise InferenceError("weights must be a file name or path", path=source)
    if weights is None and source.suffix.lower() in CARD_SUFFIXES:
        raise InferenceError(
            "the model card names no weights file",
            path=source,
            fix="Add weights: <file> (a state dict or TorchScript file, relative to the card)",
        )
    return ModelCard(
        name=str(raw.get("name") or source.stem),
        architecture=architecture,
        labels=tuple(labels),
        preprocessing=preprocessing,
        activation=raw.get("activation", "sigmoid"),
        weights=None if weights is None else (source.parent / str(weights)),
    )


def _integer(raw: dict[str, Any], field: str, source: Path, default: int | None = None) -> int:
    value = raw.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InferenceError(f"{field} must be a whole number, got {value!r}", path=source)
    return value


def _normalization(value: Any, channels: int, source: Path) -> dict[str, tuple[float, ...]]:
    if value == "imagenet":
        if channels != 3:
            raise InferenceError("imagenet normalization needs channels: 3", path=source)
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    if isinstance(value, dict) and set(value) == {"range"} and _numbers(value["range"], 2):
        mean, std = range_normalization(*value["range"], channels)
        return {"mean": mean, "std": std}
    if isinstance(value, dict) and set(value) == {"mean", "std"}:
        mean, std = value["mean"], value["std"]
        mean = [mean] * channels if isinstance(mean, int | float) else mean
        std = [std] * channels if isinstance(std, int | float) else std
        if _numbers(mean, channels) and _numbers(std, channels):
            return {"mean": tuple(map(float, mean)), "std": tuple(map(float, std))}
    raise InferenceError(
        f"normalization {value!r} is not understood",
        path=source,
        fix=f"Use imagenet, {{mean: [...], std: [...]}} with {channels} values each, or {{range: [low, high]}}",
    )


def _numbers(values: Any, count: int) -> bool:
    return (
        isinstance(values, list | tuple)
        and len(values) == count
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    )
