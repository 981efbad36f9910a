"""Model loading: torchxrayvision models by name, TorchScript files, and torchvision state dicts described by a
model card. Loading a checkpoint never unpickles arbitrary objects; loading a TorchScript file RUNS CODE FROM THE
FILE (its serialized methods, including ``__setstate__``, execute as soon as it is loaded), so it happens only
with an explicit ``allow_torchscript=True`` (``--allow-torchscript``) and a ``.pt``/``.ts``/``.pth`` name. Treat
a TorchScript file like a program: load only files you would run.

A model SPEC (the CLI's ``--model``) is one of:

- ``xrv:NAME`` or ``xrv:NAME@/path/to/weights.pt``: a torchxrayvision model. NAME is a torchxrayvision weights
  name (``densenet121-res224-all``, ``densenet121-res224-nih``, ..., ``resnet50-res512-all``), a short name
  (``all``, ``nih``, ...) or ``densenet121`` / ``resnet50`` (the ``-all`` weights). Without ``@path`` the
  weights come from torchxrayvision's cache folder (``cxrfail models pull NAME`` fills it). Inputs are 1-channel,
  scaled to [-1024, 1024], at the weights' resolution; outputs with an empty torchxrayvision label are dropped.
  The output is the sigmoid of the logits: torchxrayvision's optional operating-point rescaling (``op_norm``)
  is not applied, since cxrfail chooses its own thresholds.
- a TorchScript file carrying its model card as the extra file ``cxrfail_card.json``
  (``torch.jit.save(module, path, _extra_files={"cxrfail_card.json": json.dumps(card)})``);
- a model card (``.json``, ``.yaml``, ``.yml``; see `cxrfail.inference.cards`) naming a state dict or a
  TorchScript file.

Confinement (the dashboard): with ``roots``, every file a SPEC or card names (the card, its ``weights:``, a
TorchScript file) must lie inside one of ``roots`` when it is opened, checked on the open file descriptor
(`cxrfail.roots.open_under_roots`); with ``torchscript_roots``, TorchScript loads only from a file inside those.
A refused path gets the same message whether or not it exists, and nothing is read from it. Each file is read
once: the weights digest is of the bytes that were loaded.

Checkpoints are read with ``torch.load(..., weights_only=True)`` or safetensors. torchxrayvision's own weights
files pickle whole modules; for them, and only them, torchxrayvision's and torch.nn's layer classes are allowed
as well. A checkpoint that needs any other object unpickled is refused.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import io
import json
import os
import pickle
import re
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cxrfail.files import atomic_write_with, bytes_sha256
from cxrfail.inference.cards import (
    CARD_SUFFIXES,
    SPEC_HELP,
    TORCHSCRIPT,
    TORCHVISION_ARCHITECTURES,
    ModelCard,
    Preprocessing,
    parse_card_text,
    parse_model_card,
    range_normalization,
)
from cxrfail.inference.errors import InferenceError

EMBEDDED_CARD = "cxrfail_card.json"
XRV_PREFIX = "xrv:"
XRV_ALIASES = {"densenet121": "densenet121-res224-all", "resnet50": "resnet50-res512-all"}


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for inference.

    Attributes:
        card: labels, preprocessing and activation.
        module: the network in eval mode; input (N, channels, input_size, input_size) float32, output
            (N, len(card.labels)) raw scores before ``card.activation``. None for a model loaded lazily
            (`load_model` with ``lazy=True``) until `torch_module` builds it.
        weights_digest: SHA-256 (hex) of the weights or TorchScript file.
        output_indices: positions of the labelled outputs, in output order.
        findings: canonical finding name of each labelled output (same order as ``output_indices``).
        build: for a lazy model, what builds the network (reads the weights).
    """

    card: ModelCard
    module: nn.Module | None
    weights_digest: str
    output_indices: tuple[int, ...]
    findings: tuple[str, ...]
    build: Callable[[], nn.Module] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.card.name

    def torch_module(self) -> nn.Module:
        """The network in eval mode, built now when the model was loaded lazily (then kept)."""
        if self.module is None:
            object.__setattr__(self, "module", self.build().eval())
        return self.module


TORCHSCRIPT_SUFFIXES = (".pt", ".ts", ".pth")


@dataclass(frozen=True)
class ModelFiles:
    """Where model files may be read from. ``roots``: None (anywhere: the command line) or the folders every
    file must lie in when opened; ``torchscript_roots``: None (anywhere, with the opt-in) or the only folders
    TorchScript may load from."""

    roots: tuple[Path, ...] | None = None
    torchscript_roots: tuple[Path, ...] | None = None

    def read(self, path: Path) -> bytes:
        """The file's bytes, opened inside ``roots`` (checked on the descriptor) when they are set."""
        if self.roots is None:
            return path.read_bytes()
        from cxrfail.roots import read_under_roots

        return read_under_roots(path, self.roots)

    def check_path(self, path: Path) -> None:
        """Refuse, before anything is opened, a path outside ``roots`` (the same message whether or not it
        exists)."""
        if self.roots is not None:
            from cxrfail.roots import resolve_under_roots

            resolve_under_roots(path, self.roots)

    def check_torchscript(self, path: Path) -> None:
        if self.torchscript_roots is not None:
            from cxrfail.roots import MODEL_ROOTS_VARIABLE, is_under

            if not is_under(path, self.torchscript_roots):
                raise InferenceError(
                    "refused: TorchScript runs code from the file, and this file is outside the folders the "
                    "operator allowed for it",
                    path=path,
                    fix=f"Ask the operator to put it in a folder of {MODEL_ROOTS_VARIABLE}, or use a state dict "
                    "(safetensors) with a model card",
                )


def load_model(
    spec: str | Path, *, allow_torchscript: bool = False, roots=None, torchscript_roots=None, lazy: bool = False
) -> LoadedModel:
    """Load the model a SPEC names (see the module docstring). A TorchScript file (named directly or by a
    card) is refused unless ``allow_torchscript``: loading it runs code from the file. ``roots`` and
    ``torchscript_roots`` confine every file read (see `ModelFiles`).

    ``lazy``: for a torchxrayvision model, read and hash its weights now but build the network (which imports
    torchxrayvision, torchvision and torch._dynamo: seconds) only when `LoadedModel.torch_module` is first
    called; an engine serving the model's cached ONNX export never calls it. Errors in the weights file then
    surface at that call."""
    files = ModelFiles(
        None if roots is None else tuple(map(Path, roots)),
        None if torchscript_roots is None else tuple(map(Path, torchscript_roots)),
    )
    text = str(spec)
    if "\0" in text:
        raise InferenceError("a model path cannot contain a NUL character", fix=SPEC_HELP)
    if text.startswith(XRV_PREFIX):
        name, _, weights = text[len(XRV_PREFIX) :].partition("@")
        # Without @path the weights come from torchxrayvision's own cache folder: a place nobody typed.
        return load_xrv_model(name, weights or None, files=files if weights else ModelFiles(), lazy=lazy)
    path = Path(text)
    files.check_path(path)
    try:
        data = files.read(path)
    except (IsADirectoryError, FileNotFoundError, NotADirectoryError):
        raise InferenceError("model file not found", path=path, fix=SPEC_HELP) from None
    except OSError as exc:
        raise InferenceError(f"cannot read the model file ({exc.strerror or type(exc).__name__})", path=path) from None
    if path.suffix.lower() in CARD_SUFFIXES:
        return load_card_model(path, allow_torchscript=allow_torchscript, files=files, text=data)
    if _is_torchscript(data):
        return load_torchscript_model(path, allow_torchscript=allow_torchscript, files=files, data=data)
    raise InferenceError(
        "neither a model card nor a TorchScript file",
        path=path,
        fix="A state dict needs a model card naming its architecture, labels and preprocessing; " + SPEC_HELP,
    )


def load_card_model(
    card_path: str | Path,
    *,
    allow_torchscript: bool = False,
    files: ModelFiles = ModelFiles(),
    text: bytes | None = None,
) -> LoadedModel:
    """Load the model a card file describes: a state dict for a torchvision architecture, or (only with
    ``allow_torchscript``, since it runs code from the file) a TorchScript file. The card's ``weights`` path
    is confined like the card (``files``)."""
    card_path = Path(card_path)
    if text is None:
        files.check_path(card_path)
        text = files.read(card_path)
    card = parse_card_text(text, card_path)
    if card.architecture == TORCHSCRIPT:
        return load_torchscript_model(card.weights, card, allow_torchscript=allow_torchscript, files=files)
    data = _read_weights(card.weights, files)
    with torch.device("meta"):
        module = build_torchvision_model(card.architecture, len(card.labels), card.preprocessing.channels)
    load_weights(module, read_state_dict(card.weights, data=data), card.weights)
    return _ready(card, module, bytes_sha256(data))


def _read_weights(path: Path, files: ModelFiles, what: str = "weights file") -> bytes:
    """The bytes of a weights (or TorchScript) file, confined by ``files``; `InferenceError` when missing."""
    files.check_path(path)
    try:
        return files.read(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise InferenceError(f"{what} not found", path=path) from None
    except OSError as exc:
        raise InferenceError(f"cannot read the {what} ({exc.strerror or type(exc).__name__})", path=path) from None


def load_torchscript_model(
    path: str | Path,
    card: ModelCard | None = None,
    *,
    allow_torchscript: bool = False,
    files: ModelFiles = ModelFiles(),
    data: bytes | None = None,
) -> LoadedModel:
    """Load a TorchScript file; its card is ``card`` or the one embedded as ``cxrfail_card.json``.

    Loading TorchScript executes code stored in the file (any method, ``__setstate__`` included, can do what
    Python can), so it needs ``allow_torchscript=True`` and a ``.pt``/``.ts``/``.pth`` name; otherwise
    `InferenceError` says why. Only load TorchScript files from people you would let run programs here.
    """
    path = Path(path)
    if not allow_torchscript:
        raise InferenceError(
            "refused: this is a TorchScript file, and loading TorchScript runs code from the file",
            path=path,
            fix="Pass --allow-torchscript (allow_torchscript=True) only for a file you trust as a "
            "program, or re-save the weights as a state dict or safetensors with a model card",
        )
    if path.suffix.lower() not in TORCHSCRIPT_SUFFIXES:
        raise InferenceError(
            f"refused: a TorchScript file must be named {', '.join(TORCHSCRIPT_SUFFIXES)}",
            path=path,
            fix="Rename it so that what it is stays visible",
        )
    files.check_path(path)
    files.check_torchscript(path)
    if data is None:
        data = _read_weights(path, files, "TorchScript file")
    extra_files = {EMBEDDED_CARD: ""}
    try:
        with warnings.catch_warnings():  # torch's notice that TorchScript is deprecated is not for our users
            warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated", category=FutureWarning)
            module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra_files)
    except Exception as exc:  # noqa: BLE001 - any failure to read the file is one unreadable model
        raise InferenceError(f"not a readable TorchScript file ({_first_line(exc)})", path=path) from None
    if card is None:
        if not extra_files[EMBEDDED_CARD]:
            raise InferenceError(
                f"the TorchScript file carries no model card ({EMBEDDED_CARD})",
                path=path,
                fix="Write a model card with architecture: torchscript and weights: <this file>, and pass the card",
            )
        try:
            raw = json.loads(extra_files[EMBEDDED_CARD])
        except json.JSONDecodeError as exc:
            raise InferenceError(f"the embedded {EMBEDDED_CARD} is not valid JSON ({exc})", path=path) from None
        if not isinstance(raw, dict):
            raise InferenceError(f"the embedded {EMBEDDED_CARD} is not a mapping of fields", path=path)
        card = parse_model_card({**raw, "weights": path.name}, source=path, default_architecture=TORCHSCRIPT)
    return _ready(card, module, bytes_sha256(data))


def build_torchvision_model(architecture: str, num_outputs: int, channels: int) -> nn.Module:
    """A torchvision classifier with random weights and ``num_outputs`` outputs; with ``channels == 1`` its first
    convolution takes one input channel. Build it under ``torch.device("meta")`` to skip the random
    initialisation when `load_weights` follows."""
    import torchvision

    if architecture not in TORCHVISION_ARCHITECTURES:
        raise InferenceError(
            f"architecture {architecture!r} is not supported", fix=f"Use one of {', '.join(TORCHVISION_ARCHITECTURES)}"
        )
    module = torchvision.models.get_model(architecture, weights=None, num_classes=num_outputs)
    if channels == 1:
        _make_single_channel(module)
    return module


def read_state_dict(
    path: str | Path, allowed_classes: Iterable[type] = (), *, data: bytes | None = None
) -> dict[str, torch.Tensor]:
    """Read a state dict (parameter name -> tensor) from a ``.safetensors`` file or a ``torch.save`` file
    (``data``: its bytes, already read; ``path`` then only names it).

    ``torch.save`` files are read with ``weights_only=True``; ``allowed_classes`` (module classes) may
    additionally be reconstructed, for checkpoints that pickle a whole module. A nested state dict
    (``{"state_dict": ...}``, ``{"model": ...}``) and a ``module.`` prefix (DataParallel) are unwrapped. A file
    that is not a checkpoint raises `InferenceError` (one line), whatever the reader's own error.
    """
    path = Path(path)
    if data is None:
        data = _read_weights(path, ModelFiles())
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load as load_safetensors

        try:
            return _strip_prefix(load_safetensors(data), "module.")
        except Exception as exc:  # noqa: BLE001 - any failure to parse is one unreadable file
            raise InferenceError(f"not a readable safetensors file ({_first_line(exc)})", path=path) from None
    try:
        with torch.serialization.safe_globals(list(allowed_classes)):
            loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        culprit = f" (it references {found.group(1)})" if found else ""
        raise InferenceError(
            f"refused: the checkpoint needs full unpickling{culprit}, which can run arbitrary code",
            path=path,
            fix="Re-save only the weights: torch.save(model.state_dict(), path) or safetensors.torch.save_file",
        ) from None
    except Exception as exc:  # noqa: BLE001 - a text file gives IndexError, others KeyError, ...: all unreadable
        raise InferenceError(
            f"not a readable checkpoint ({type(exc).__name__}: {_first_line(exc)})", path=path
        ) from None
    return _strip_prefix(_state_dict_of(loaded, path), "module.")


def load_weights(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: Path) -> None:
    """Make ``state_dict``'s tensors the parameters and buffers of ``module`` (built on the meta device, or not),
    as float32; every parameter must match by name and shape."""
    try:
        missing, unexpected = module.load_state_dict(state_dict, strict=False, assign=True)
    except RuntimeError as exc:
        raise InferenceError(
            f"weights do not fit the architecture ({_first_line(exc)})",
            path=source,
            fix="Check the card's architecture, labels (one per output) and channels",
        ) from None
    if missing or unexpected:
        raise InferenceError(
            f"weights do not fit the architecture: missing {_few(missing)}; unexpected {_few(unexpected)}",
            path=source,
            fix="Check the card's architecture, labels (one per output) and channels",
        )
    module.float()


# --- torchxrayvision ---------------------------------------------------------------------------------------------


def xrv_weight_names() -> list[str]:
    """torchxrayvision weights names cxrfail can load (long form)."""
    return [name for name in xrv_weights_table() if name.startswith(("densenet", "resnet"))]


def resolve_xrv_name(name: str) -> str:
    """The long torchxrayvision weights name for ``name`` (long, short such as ``nih``, or an alias)."""
    table = xrv_weights_table()
    name = XRV_ALIASES.get(name, name)
    info = table.get(name)
    if info is None:
        raise InferenceError(
            f"unknown torchxrayvision model {name!r}",
            fix=f"Use one of {', '.join(xrv_weight_names())}, or densenet121 / resnet50",
        )
    return next(long for long in xrv_weight_names() if table[long] is info)


def xrv_weights_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where torchxrayvision keeps the weights file for ``name``: ``cache_dir`` or its own cache folder
    (``~/.torchxrayvision/models_data``)."""
    import torchxrayvision as xrv

    url = xrv_weights_table()[resolve_xrv_name(name)]["weights_url"]
    folder = Path(cache_dir) if cache_dir is not None else Path(xrv.utils.get_cache_dir())
    return folder.expanduser() / os.path.basename(url)


def pull_xrv_weights(
    name: str, cache_dir: str | Path | None = None, url: str | None = None, timeout_s: float = 30.0
) -> Path:
    """Download the official weights for ``name`` into torchxrayvision's cache folder (or ``cache_dir``) and
    return the file's path; a file already there is checked, not downloaded again.

    ``url`` overrides the official address (a mirror). The download goes to a temporary file that is renamed into
    place only once it loads as a checkpoint. Raises `InferenceError` when the network or the file fails.
    """
    long_name = resolve_xrv_name(name)
    target = xrv_weights_path(long_name, cache_dir)
    if target.is_file():
        read_state_dict(target, _xrv_module_classes())
        return target
    url = url or xrv_weights_table()[long_name]["weights_url"]
    target.parent.mkdir(parents=True, exist_ok=True)

    def download(temporary: Path) -> None:
        with open(temporary, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        read_state_dict(temporary, _xrv_module_classes())

    try:
        atomic_write_with(target, download)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise InferenceError(
            f"cannot download the {long_name} weights from {url} ({reason})",
            fix=f"Where there is no network, fetch the file on another machine and copy it to {target}, "
            f"or pass --model xrv:{long_name}@/path/to/weights.pt",
        ) from None
    return target


def load_xrv_model(
    name: str,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    *,
    files: ModelFiles = ModelFiles(),
    lazy: bool = False,
) -> LoadedModel:
    """A torchxrayvision model with the weights in ``weights`` (a state dict of ``xrv.models.DenseNet`` or
    ``xrv.models.ResNet``, or torchxrayvision's own weights file), else from its cache folder. ``lazy``: see
    `load_model`."""
    long_name = resolve_xrv_name(name)
    info = xrv_weights_table()[long_name]
    path = Path(weights) if weights is not None else xrv_weights_path(long_name, cache_dir)
    files.check_path(path)
    if not path.is_file():
        raise InferenceError(
            f"no weights file for {long_name}",
            path=path,
            fix=f"Run `cxrfail models pull {long_name}` where a network is available, "
            f"or pass xrv:{long_name}@/path/to/weights.pt",
        )
    data = _read_weights(path, files)
    labels = tuple(info["labels"])

    def build() -> nn.Module:
        import torchxrayvision as xrv

        state = read_state_dict(path, _xrv_module_classes(), data=data)
        state.pop("op_threshs", None)
        with torch.device("meta"):
            if long_name.startswith("densenet"):
                module = xrv.models.DenseNet(weights=None, num_classes=len(labels))
            else:
                module = build_torchvision_model(long_name.split("-")[0], len(labels), channels=1)
                state = _strip_prefix(state, "model.")
        load_weights(module, state, path)
        return module

    resolution = int(info["input_resolution"])
    mean, std = range_normalization(-1024, 1024, channels=1)
    card = ModelCard(
        name=f"xrv-{long_name}",
        architecture=f"{XRV_PREFIX}{long_name}",
        labels=labels,
        preprocessing=Preprocessing(resolution, resolution, 1, mean, std),
        activation="sigmoid",
        weights=path,
    )
    return _ready(card, None if lazy else build(), bytes_sha256(data), build)


#: What cxrfail reads of each torchxrayvision weights entry.
_XRV_FIELDS = ("labels", "input_resolution", "weights_url")


@functools.cache
def xrv_weights_table() -> dict[str, dict[str, object]]:
    """torchxrayvision's weights table (``xrv.models.model_urls``): name → labels, input_resolution and
    weights_url, aliases sharing one entry. Read from the package's source without importing it (importing
    torchxrayvision imports torchvision, whose detection ops import torch._dynamo: seconds); imported when its
    source does not have the expected form."""
    try:
        return _parse_xrv_weights_table()
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, AttributeError):
        import torchxrayvision as xrv

        entries: dict[int, dict[str, object]] = {}  # one dict per entry, so that aliases stay one object
        return {
            name: entries.setdefault(id(info), {key: info.get(key) for key in _XRV_FIELDS})
            for name, info in xrv.models.model_urls.items()
        }


def _parse_xrv_weights_table() -> dict[str, dict[str, object]]:
    """``model_urls`` from torchxrayvision/models.py: its ``model_urls[NAME] = {...}`` and
    ``model_urls[ALIAS] = model_urls[NAME]`` statements, the fields of `_XRV_FIELDS` as literals."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("torchxrayvision is not installed as a package")
    source = Path(next(iter(spec.submodule_search_locations))) / "models.py"
    table: dict[str, dict[str, object]] = {}
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if not (isinstance(target, ast.Subscript) and getattr(target.value, "id", None) == "model_urls"):
            continue
        name = ast.literal_eval(target.slice)
        if isinstance(value, ast.Dict):
            table[name] = {
                ast.literal_eval(key): ast.literal_eval(item)
                for key, item in zip(value.keys, value.values)
                if isinstance(key, ast.Constant) and key.value in _XRV_FIELDS
            }
        elif isinstance(value, ast.Subscript) and getattr(value.value, "id", None) == "model_urls":
            table[name] = table[ast.literal_eval(value.slice)]
    loadable = [entry for name, entry in table.items() if name.startswith(("densenet", "resnet"))]
    if not loadable or any(not {"labels", "input_resolution"} <= set(entry) for entry in loadable):
        raise ValueError("torchxrayvision's weights table has another form")
    return table


def _xrv_module_classes() -> list[type]:
    """Classes a torchxrayvision weights file may reconstruct: its DenseNet and torch.nn layers."""
    import torchxrayvision as xrv
    from torchxrayvision.models import _DenseBlock, _DenseLayer, _Transition

    return [
        xrv.models.DenseNet,
        _DenseBlock,
        _DenseLayer,
        _Transition,
        nn.Sequential,
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.ReLU,
        nn.MaxPool2d,
        nn.AvgPool2d,
        nn.Linear,
    ]


# --- helpers -----------------------------------------------------------------------------------------------------


def _ready(
    card: ModelCard, module: nn.Module | None, weights_digest: str, build: Callable[[], nn.Module] | None = None
) -> LoadedModel:
    from cxrfail.findings import canonical_finding

    indices, findings, seen = [], [], {}
    for position, label in enumerate(card.labels):
        if not label:
            continue
        try:
            finding = canonical_finding(label)
        except KeyError:
            raise InferenceError(
                f"label {label!r} (output {position}) is not a known finding",
                path=card.weights or card.name,
                fix='Use NIH or CheXpert finding names, or "" for an output to drop',
            ) from None
        if finding in seen:
            raise InferenceError(
                f"labels {seen[finding]!r} and {label!r} both map onto {finding}",
                path=card.weights or card.name,
                fix="Give each output its own finding",
            )
        seen[finding] = label
        indices.append(position)
        findings.append(finding)
    return LoadedModel(
        card=card,
        module=None if module is None else module.eval(),
        weights_digest=weights_digest,
        output_indices=tuple(indices),
        findings=tuple(findings),
        build=build,
    )


def _is_torchscript(data: bytes) -> bool:
    buffer = io.BytesIO(data)
    if not zipfile.is_zipfile(buffer):
        return False
    try:
        with zipfile.ZipFile(buffer) as archive:
            return any("/code/" in member for member in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _state_dict_of(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(loaded, nn.Module):
        return dict(loaded.state_dict())
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(loaded.get(key), Mapping | nn.Module):
                return _state_dict_of(loaded[key], path)
        if loaded and all(isinstance(value, torch.Tensor) for value in loaded.values()):
            return dict(loaded)
    raise InferenceError(
        f"the checkpoint holds no state dict (found {type(loaded).__name__})",
        path=path,
        fix="Save model.state_dict(), a mapping of parameter names to tensors",
    )


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix) :]: value for key, value in state.items()}
    return dict(state)


def _make_single_channel(module: nn.Module) -> None:
    name, first = next((n, m) for n, m in module.named_modules() if isinstance(m, nn.Conv2d))
    parent = module.get_submodule(name.rpartition(".")[0])
    replacement = nn.Conv2d(
        1,
        first.out_channels,
        first.kernel_size,
        first.stride,
        first.padding,
        first.dilation,
        first.groups,
        first.bias is not None,
        first.padding_mode,
    )
    setattr(parent, name.rpartition(".")[2], replacement)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _few(names: list[str]) -> str:
    if not names:
        return "none"
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
