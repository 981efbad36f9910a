"""Canonical finding names and the mapping of other spellings onto them.

Findings use CheXpert names (DESIGN.md, "Domain conventions"). NIH ChestX-ray14 names map onto them where a
CheXpert equivalent exists (Effusion -> Pleural Effusion); NIH findings without one keep their NIH name with
spaces (Pleural_Thickening -> Pleural Thickening). Lung Lesion on NIH data is derived from Mass or Nodule and
is an approximation: `APPROXIMATE_FINDINGS` marks it, and every table and figure that shows it should say so.
"""

from __future__ import annotations

import re

#: The 14 CheXpert observations, in CheXpert's own order.
CHEXPERT_FINDINGS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: NIH ChestX-ray14 findings with no CheXpert equivalent, kept under their NIH names (spaces, not underscores).
NIH_EXTRA_FINDINGS: tuple[str, ...] = (
    "Infiltration",
    "Mass",
    "Nodule",
    "Emphysema",
    "Fibrosis",
    "Pleural Thickening",
    "Hernia",
)

#: The five CheXpert competition tasks: the default findings of every analysis.
COMPETITION_FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)

ALL_FINDINGS: tuple[str, ...] = CHEXPERT_FINDINGS + NIH_EXTRA_FINDINGS

#: Findings that are derived from other labels and only approximate their CheXpert meaning, with the reason.
APPROXIMATE_FINDINGS: dict[str, str] = {
    "Lung Lesion": "on NIH data, derived as Mass or Nodule (label) and max(Mass, Nodule) (probability)",
}

#: NIH ChestX-ray14 label spellings (as in Data_Entry_2017 and prediction files) -> canonical name.
NIH_TO_CANONICAL: dict[str, str] = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Effusion": "Pleural Effusion",
    "Infiltration": "Infiltration",
    "Mass": "Mass",
    "Nodule": "Nodule",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Emphysema": "Emphysema",
    "Fibrosis": "Fibrosis",
    "Pleural_Thickening": "Pleural Thickening",
    "Hernia": "Hernia",
}

#: Findings defined from others (NIH: Lung Lesion = Mass or Nodule): target -> the labels it is derived from.
_DERIVED_FROM_LABELS: dict[str, frozenset[str]] = {
    "Lung Lesion": frozenset({"Mass", "Nodule"}),
}


def derived_from(finding: str) -> set[str]:
    """Labels linked to ``finding`` by derivation, in either direction: those it is derived from and those
    derived from it (Lung Lesion -> {Mass, Nodule}; Mass -> {Lung Lesion}; Nodule -> {Lung Lesion}).

    With ``finding`` as the target, a linked label partly restates the target, so it is never a feature, a
    regression covariate or a subgroup. The target itself is not in the set. ``finding`` is canonicalised
    (`canonical_finding`); raises ``KeyError`` for an unknown name.
    """
    target = canonical_finding(finding)
    linked = set(_DERIVED_FROM_LABELS.get(target, ()))
    linked |= {derived for derived, sources in _DERIVED_FROM_LABELS.items() if target in sources}
    return linked


_ALIASES: dict[str, str] = {
    "effusion": "Pleural Effusion",
    "pleural thickening": "Pleural Thickening",
    "infiltrate": "Infiltration",
    "infiltrates": "Infiltration",
    "enlarged cardiomed": "Enlarged Cardiomediastinum",
    "lung lesion": "Lung Lesion",
    "support device": "Support Devices",
}


def _normalise(name: str) -> str:
    text = str(name).strip()
    text = re.sub(r"^(prob|p|pred|prediction|probability)[_\s:.-]+", "", text, flags=re.IGNORECASE)
    text = re.sub(r"[_\s]+", " ", text)
    return text.strip().lower()


_LOOKUP: dict[str, str] = {_normalise(name): name for name in ALL_FINDINGS}
_LOOKUP.update({_normalise(nih): canonical for nih, canonical in NIH_TO_CANONICAL.items()})
_LOOKUP.update(_ALIASES)


def canonical_finding(name: str) -> str:
    """Map a finding spelling onto its canonical name.

    Accepts CheXpert names, NIH names (``Effusion``, ``Pleural_Thickening``), torchxrayvision names and column
    headers with a ``prob_`` prefix, in any case. Raises ``KeyError`` naming the input for anything else.
    """
    key = _normalise(name)
    if key in _LOOKUP:
        return _LOOKUP[key]
    raise KeyError(f"unknown finding name {name!r}; known findings: {', '.join(ALL_FINDINGS)}")


def is_finding(name: str) -> bool:
    """True when ``canonical_finding(name)`` would succeed."""
    return _normalise(name) in _LOOKUP
