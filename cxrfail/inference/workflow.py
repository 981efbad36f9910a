"""Inference for a loaded cohort: run a model over an image folder and turn the result into one more model's
predictions for that cohort, checked against it (the dashboard's Run inference page; usable from a notebook).

    added = predict_cohort("xrv:densenet121@weights.pt", "images/", cohort, taken_names=["densenet121_nih25"])
    added.predictions        # cxrfail.predictions.ModelPredictions, ready for cxrfail.analyze
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cxrfail.errors import CxrfailInputError

if TYPE_CHECKING:
    from cxrfail.cohort import Cohort
    from cxrfail.inference.cache import PredictionCache
    from cxrfail.inference.engine import InferenceResult, ProgressCallback
    from cxrfail.predictions import ModelPredictions

__all__ = ["CohortInference", "predict_cohort"]


@dataclass(frozen=True)
class CohortInference:
    """One model's predictions for a cohort, from an inference run.

    Attributes:
        predictions: the probabilities (image id × finding, in [0, 1]) under the model's name.
        result: the run (counts, failures: images that could not be decoded, with their reasons).
        n_common: cohort rows the new predictions cover (rows, the cohort's unit).
        note: one line for the dataset's notes (what produced the predictions).
    """

    predictions: ModelPredictions
    result: InferenceResult
    n_common: int
    note: str


def predict_cohort(
    spec: str,
    images: str | Path,
    cohort: Cohort,
    *,
    name: str | None = None,
    taken_names: Collection[str] = (),
    allow_torchscript: bool = False,
    model_roots: Collection[str | Path] | None = None,
    torchscript_roots: Collection[str | Path] | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    ray_address: str | None = None,
    cache: PredictionCache | None = None,
    min_overlap: float | None = None,
    progress: ProgressCallback | None = None,
    on_start: Callable[[str], None] | None = None,
) -> CohortInference:
    """Load the model ``spec`` (see `cxrfail.inference.models`), run it over ``images`` (locally, or on the Ray
    cluster at ``ray_address``) and check the predictions against ``cohort``.

    Args:
        name: the new model's name (default: the model's own).
        taken_names: names already in use (a clash is refused).
        allow_torchscript: allow loading a TorchScript file (it runs code: only from trusted folders).
        model_roots, torchscript_roots: when given, every file the model names must lie in ``model_roots``
            when opened, and TorchScript only in ``torchscript_roots`` (`cxrfail.inference.models.ModelFiles`).
        device, batch_size: for the local engine (`InferenceEngine`).
        cache: the prediction cache (default: `PredictionCache()`; results are cached per image content).
        min_overlap: the share of predicted ids that must be cohort rows (default: `AnalysisConfig`'s).
        progress: called with (images done, images in the run).
        on_start: called once with a line saying where the model runs and which findings it predicts.

    Raises:
        CxrfailInputError: no image could be predicted, the name is taken, or the ids miss the cohort.
    """
    from cxrfail.analysis.config import AnalysisConfig
    from cxrfail.inference.cache import PredictionCache
    from cxrfail.inference.models import load_model
    from cxrfail.predictions import check_coverage

    images = Path(images)
    model = load_model(
        spec, allow_torchscript=allow_torchscript, roots=model_roots, torchscript_roots=torchscript_roots
    )
    cache = cache if cache is not None else PredictionCache()
    findings = ", ".join(model.findings)
    if ray_address is None:
        from cxrfail.inference.engine import InferenceEngine

        engine = InferenceEngine(model, device=device, batch_size=batch_size, cache=cache)
        if on_start is not None:
            on_start(f"{model.name} on {engine.device} ({engine.precision}); findings: {findings}")
        result = engine.run(images, progress=progress)
    else:
        from cxrfail.inference.ray_backend import run_inference_on_ray

        if on_start is not None:
            on_start(f"{model.name} on the Ray cluster; findings: {findings}")
        result = run_inference_on_ray(model, images, ray_address, cache=cache, batch_size=batch_size, progress=progress)
    if result.probabilities.empty:
        raise CxrfailInputError(
            "no image could be predicted", fix="Check the folder holds readable PNG, JPEG or DICOM images"
        )
    predictions = result.to_predictions(name or None)
    if predictions.name in taken_names:
        raise CxrfailInputError(
            f"a model named {predictions.name!r} is already loaded", fix="Give the new model another name"
        )
    check_coverage(cohort, [predictions], AnalysisConfig().min_overlap if min_overlap is None else min_overlap)
    n_common = int(cohort.table.index.isin(predictions.probabilities.index).sum())
    note = (
        f"{predictions.name}: inference by cxrfail on {len(predictions.probabilities):,} images of "
        f"{images.name} ({result.summary()})"
    )
    return CohortInference(predictions, result, n_common, note)
