"""Inference engine: run researchers' chest X-ray models over their images, fast and never twice.

    from cxrfail.inference import InferenceEngine, PredictionCache, load_model

    model = load_model("xrv:densenet121@weights.pt")         # or a TorchScript file, or a model card
    result = InferenceEngine(model, cache=PredictionCache()).run("images/")
    result.to_csv("preds.csv")                                 # image_id + one probability column per finding
    predictions = result.to_predictions()                      # cxrfail.predictions.ModelPredictions

Modules: `cards` (model cards and preprocessing), `models` (loading), `images` (decoding, preprocessing),
`engine` (batched runs), `cache` (on-disk results), `cli` (the ``infer``, ``models``, ``cache`` subcommands).
The names below are imported on first use, so importing the package (or its CLI) does not import torch.
"""

from importlib import import_module

from cxrfail.inference.errors import InferenceError

_EXPORTS = {
    "PredictionCache": "cache",
    "default_inference_cache_dir": "cache",
    "ModelCard": "cards",
    "Preprocessing": "cards",
    "load_model_card": "cards",
    "ImageFailure": "engine",
    "InferenceEngine": "engine",
    "InferenceResult": "engine",
    "ProgressCallback": "engine",
    "ImageDecodeError": "images",
    "decode_image": "images",
    "list_images": "images",
    "preprocess": "images",
    "read_image": "images",
    "LoadedModel": "models",
    "load_model": "models",
    "pull_xrv_weights": "models",
}

__all__ = ["InferenceError", *_EXPORTS]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"cxrfail.inference.{_EXPORTS[name]}"), name)
