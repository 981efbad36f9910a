"""The demo data: the NIH ChestX-ray14 test split with real DenseNet-121 predictions, read from ../shared.

The files are never copied into the project; `demo_dir` finds them beside the checkout (or at
``CXRFAIL_DEMO_DIR``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxrfail.cohort import Cohort, load_nih
from cxrfail.errors import CohortError
from cxrfail.predictions import ModelPredictions, load_predictions
from cxrfail.reference import ReferenceLabels, load_google2019_labels, match_reference

__all__ = ["DemoData", "demo_dir", "load_demo"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEMO_SUBDIR = Path("data") / "nih-chexnet"


def demo_location() -> Path:
    """Where the demo data is looked for: ``$CXRFAIL_DEMO_DIR`` or ``<project root>/../shared/data/nih-chexnet``
    (the folder may be missing: `demo_dir` checks)."""
    return Path(os.environ.get("CXRFAIL_DEMO_DIR") or PROJECT_ROOT.parent / "shared" / DEMO_SUBDIR)


def demo_dir() -> Path:
    """Folder of the demo data (`demo_location`), checked to hold the prediction files."""
    folder = demo_location()
    if not (folder / "predictions").is_dir():
        raise CohortError(
            "demo data not found",
            path=folder,
            fix="Place the shared folder beside the checkout or set CXRFAIL_DEMO_DIR to data/nih-chexnet",
        )
    return folder


def demo_prediction_files() -> list[Path]:
    """The shared prediction CSVs, sorted by name."""
    return sorted((demo_dir() / "predictions").glob("*.csv"))


def load_demo_predictions() -> list[ModelPredictions]:
    return load_predictions(demo_prediction_files())


def load_demo_cohort(models: list[ModelPredictions] | None = None) -> Cohort:
    """The demo cohort: the NIH test-split images that the shared prediction files cover (22,433), with
    image paths for the 621 shipped images and their support-device reads.

    ``models``: the shared demo models when already loaded (their ids are the cohort; saves re-reading the
    files). Never pass other predictions: the cohort must not shrink or grow to fit them.
    """
    folder = demo_dir()
    ids: pd.Index = pd.Index([], dtype="string")
    if models is None:
        for path in demo_prediction_files():
            ids = ids.union(pd.Index(pd.read_csv(path, usecols=[0], dtype=str).iloc[:, 0], dtype="string"))
    else:
        for model in models:
            ids = ids.union(model.probabilities.index)
    return load_nih(
        image_ids=ids,
        image_dir=folder / "images",
        devices_csv=folder / "devices.csv",
        name="NIH ChestX-ray14 test split (demo)",
    )


def load_demo_reference_labels(cohort: Cohort | None = None) -> ReferenceLabels:
    """The demo's reference standard: Google's 2019 expert labels (torchxrayvision's bundled copy) on the demo
    cohort's rows (935 of the 22,433 test images, 353 patients).

    ``cohort``: the demo cohort when already loaded (default: `load_demo_cohort`).
    """
    return match_reference(load_google2019_labels(), cohort if cohort is not None else load_demo_cohort())


@dataclass(frozen=True)
class DemoData:
    """The demo's inputs, ready for `cxrfail.analyze`.

    Attributes:
        cohort: the NIH ChestX-ray14 test split (22,433 images of 2,796 patients; unit: image).
        predictions: one `ModelPredictions` per shared prediction file (probabilities in [0, 1] per image and
            finding), sorted by file name.
        reference: Google's 2019 expert labels on the 935 cohort images they read (not a random sample).
    """

    cohort: Cohort
    predictions: tuple[ModelPredictions, ...]
    reference: ReferenceLabels

    @property
    def models(self) -> tuple[str, ...]:
        """The models' names."""
        return tuple(model.name for model in self.predictions)


def load_demo(models: Sequence[str] | None = None) -> DemoData:
    """The demo data (see `DemoData`); ``models``: keep only these models (names of the prediction files,
    e.g. ``["densenet121_nih25"]``); the cohort is the same either way."""
    predictions = load_demo_predictions()
    cohort = load_demo_cohort(predictions)
    if models is not None:
        by_name = {model.name: model for model in predictions}
        unknown = [name for name in models if name not in by_name]
        if unknown:
            raise CohortError(f"no demo model {', '.join(map(repr, unknown))}", fix=f"Use one of {', '.join(by_name)}")
        predictions = [by_name[name] for name in models]
    return DemoData(cohort, tuple(predictions), load_demo_reference_labels(cohort))
