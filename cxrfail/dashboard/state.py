"""Session state the pages share, the sidebar's `Selection`, and the selection in the URL.

The URL (``st.query_params``) carries the selection: the sidebar's cohort, models, finding(s), seed and
threshold rule, and each page's own pickers (model, filters, flip tau, opened case). A reload or a shared link
starts a new session, whose widgets take their first values from the URL (`restore`); every run writes the
values back (`remember`). A value from the URL that is not a valid choice is ignored (the default is used).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import streamlit as st

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.identifiers.features import is_oracle
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
        """The run: the base config's feature sets (the ladder) with the chosen feature set among them; the
        chosen one is the run's identifier (flipping, SHAP) unless it is an oracle."""
        base = base_config()
        feature_sets = tuple(dict.fromkeys((*base.feature_sets, self.feature_set)))
        identifier = base.identifier_feature_set if is_oracle(self.feature_set) else self.feature_set
        return dataclasses.replace(
            base,
            findings=self.findings,
            seed=self.seed,
            learners=(self.learner,),
            feature_sets=feature_sets,
            identifier_feature_set=identifier,
            threshold_method=self.threshold_method,
        )


def identifier_choice() -> tuple[str, str]:
    """(learner, feature set) of the identifier the pages use (chosen on Identifiers)."""
    config = base_config()
    return st.session_state.get(IDENTIFIER, (config.learners[0], config.identifier_feature_set))


def set_identifier_choice(learner: str, feature_set: str) -> None:
    st.session_state[IDENTIFIER] = (learner, feature_set)


def restore(
    key: str,
    param: str,
    *,
    many: bool = False,
    parse: Callable[[str], object] = str,
    valid: Callable[[object], bool] = lambda value: True,
) -> None:
    """Give the widget ``key`` its value from the URL's ``param`` when this session has none yet (a reload
    or a shared link): a list of every ``param=`` value when ``many``, else the last one, each through
    ``parse``; values ``valid`` rejects (or ``parse`` cannot read) are ignored."""
    if key in st.session_state or param not in st.query_params:
        return
    try:
        values = [parse(text) for text in st.query_params.get_all(param)]
    except (TypeError, ValueError):
        return
    value = values if many else (values[-1] if values else None)
    if value is not None and valid(value):
        st.session_state[key] = value


def remember(param: str, value: object) -> None:
    """Write ``value`` (a list: one ``param=`` per item; None: removed) into the URL, when it changed."""
    if value is None:
        if param in st.query_params:
            del st.query_params[param]
        return
    texts = (
        [_text(item) for item in value]
        if isinstance(value, (list, tuple)) and not isinstance(value, str)
        else _text(value)
    )
    current = st.query_params.get_all(param)
    if current != (texts if isinstance(texts, list) else [texts]):
        st.query_params[param] = texts


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def synced(
    widget: Callable,
    label: str,
    *args,
    key: str,
    param: str,
    default: object = None,
    options: Sequence | None = None,
    allowed: Sequence | None = None,
    many: bool = False,
    parse: Callable[[str], object] = str,
    **kwargs,
):
    """Draw ``widget(label, *args, key=key, **kwargs)`` with its value kept in the URL as ``param``.

    ``options``: the widget's options (passed to it first) and the valid values; ``allowed``: valid values of a
    widget without options (a number input's range). The value comes from this session, else from the URL
    (when valid), else ``default`` (given through the session state, so the widget is never passed a default
    beside it)."""
    choices = options if options is not None else allowed

    def valid(value: object) -> bool:
        if choices is None:
            return not many or isinstance(value, (list, tuple))
        return all(v in choices for v in value) if many else value in choices

    if key in st.session_state and not valid(st.session_state[key]):
        del st.session_state[key]
    restore(key, param, many=many, parse=parse, valid=valid)
    if key not in st.session_state and default is not None:
        st.session_state[key] = default
    if options is not None:
        args = (options, *args)
    value = widget(label, *args, key=key, **kwargs)
    remember(param, value)
    return value
