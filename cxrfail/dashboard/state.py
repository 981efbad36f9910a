"""Session state the pages share, and the sidebar's `Selection`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import streamlit as st

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.dashboard.datasets import Dataset
from cxrfail.dashboard.settings import base_config

PICKED_IMAGE = "cxrfail_picked_image"  # row id chosen on Cases (or Explain)
IDENTIFIER = "cxrfail_identifier"  # (learner, feature_set) chosen on Identifiers
SLICE_FILTER = "cxrfail_slice"  # the slice opened from Slices: {"model", "finding", "slice", "predicates"}


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
        return dataclasses.replace(
            base_config(), findings=self.findings, seed=self.seed, learners=(self.learner,),
            feature_sets=(self.feature_set,), threshold_method=self.threshold_method,
        )


def identifier_choice() -> tuple[str, str]:
    """(learner, feature set) of the identifier the pages use (chosen on Identifiers)."""
    config = base_config()
    return st.session_state.get(IDENTIFIER, (config.learners[0], config.feature_sets[0]))


def set_identifier_choice(learner: str, feature_set: str) -> None:
    st.session_state[IDENTIFIER] = (learner, feature_set)
