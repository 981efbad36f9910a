"""cxrfail: failure analysis of chest X-ray classifiers (a CheXbreak reproduction as software).

The Python API, for notebooks and scripts::

    from cxrfail import AnalysisConfig, analyze, load_demo

    demo = load_demo()                                   # cohort, model predictions, expert reference labels
    config = AnalysisConfig(findings=("Pneumothorax",), learners=("logistic",))
    result = analyze(demo.cohort, demo.predictions, config, reference=demo.reference)
    pair = result.pair("densenet121_nih25", "Pneumothorax")
    pair.overall                  # misclassification on the test split: n, rate, 95% interval
    pair.by_group("sex")          # the same per level of a subgroup, with patient-clustered intervals
    pair.identifiers              # can misclassification be predicted? held-out AUROC per identifier
    pair.flip                     # flipping the flagged predictions at the tau chosen on calibration

Your own data: `load_cohort` (NIH, CheXpert or any CSV with a column map) and `load_predictions` (one CSV per
model). The names below are imported on first use, so ``import cxrfail`` stays light.
"""

from importlib import import_module

__version__ = "0.1.0"

#: public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "load_demo": ("cxrfail.demo", "load_demo"),
    "load_cohort": ("cxrfail.cohort", "load_cohort"),
    "load_predictions": ("cxrfail.predictions", "load_predictions"),
    "load_reference_labels": ("cxrfail.reference", "load_reference_labels"),
    "AnalysisConfig": ("cxrfail.analysis.config", "AnalysisConfig"),
    "analyze": ("cxrfail.analysis.runner", "analyze"),
    "AnalysisResult": ("cxrfail.analysis.result", "AnalysisResult"),
    "PairResult": ("cxrfail.analysis.result", "PairResult"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
