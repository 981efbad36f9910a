"""Session state the pages share, and the sidebar's `Selection`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import streamlit as st

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.identifiers.features import is_oracle
from cxrfail.dashboard.datasets import Dataset
from cxrfail.dashboard.settings import base_config
from cxrfail.predictions import ModelPredictions

PICKED_IMAGE = "cxrfail_picked_image"  # row id chosen on Cases (or Explain)
IDENTIFIER = "cxrfail_identifier"  # (learner, feature_set) chosen on Identifiers


@dataclass(frozen=True)
class Selection:
    """What the sidebar chose; every page reads it."""

    dataset: Dataset
    models: tuple[str, ...]
    findings: tuple[str, ...]  # analysed
    finding: str  # shown
    seed: int
    learner: str
    feature_set: str
    threshold_method: str

    @property
    def config(self) -> AnalysisConfig:
        """The run: the base config's feature sets (the ladder) with the chosen feature set among them; the
        chosen one is the run's identifier (flipping, SHAP) unless it is an oracle."""
        base = base_config()
        feature_sets = tuple(dict.fromkeys((*base.feature_sets, self.feature_set)))
        identifier = base.identifier_feature_set if is_oracle(self.feature_set) else self.feature_set
        return dataclasses.replace(
            base, findings=self.findings, seed=self.seed, learners=(self.learner,), feature_sets=feature_sets,
            identifier_feature_set=identifier, threshold_method=self.threshold_method,
        )

    @property
    def model_objects(self) -> tuple[ModelPredictions, ...]:
        return tuple(self.dataset.model(name) for name in self.models)


def identifier_choice() -> tuple[str, str]:
    """(learner, feature set) of the identifier the pages use (chosen on Identifiers)."""
    config = base_config()
    return st.session_state.get(IDENTIFIER, (config.learners[0], config.identifier_feature_set))


def set_identifier_choice(learner: str, feature_set: str) -> None:
    st.session_state[IDENTIFIER] = (learner, feature_set)
