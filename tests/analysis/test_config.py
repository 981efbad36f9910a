"""The analysis settings have one home (`cxrfail.analysis.config`): every numeric setting has a range, every
named choice a list, and no other module declares those names again."""

import ast
import dataclasses
from pathlib import Path

import pytest

from cxrfail.analysis import config as config_module
from cxrfail.analysis.config import CHOICES, RANGES, AnalysisConfig
from cxrfail.errors import ConfigError

PACKAGE = Path(config_module.__file__).resolve().parents[1]
PROJECT = PACKAGE.parent
SHARED_CONSTANTS = (
    "THRESHOLD_METHODS",
    "LEARNERS",
    "FEATURE_SETS",
    "FEATURE_PARTS",
    "ORACLE_PART",
    "IDENTIFIER_LADDER",
    "PROBABILITY_ONLY",
    "AUROC_INTERVAL_METHODS",
    "ANALYTIC_AUROC_MIN_ROWS",
    "SCOPES",
    "FULL_SCOPE",
    "CORE_SCOPE",
    "CLINICAL_FINDINGS",
    "MIN_TEST_PATIENTS",
    "MIN_CALIBRATION_FLIPS",
)


def test_every_numeric_setting_has_a_range_and_every_named_setting_a_list():
    for field in dataclasses.fields(AnalysisConfig):
        default = field.default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert field.name in RANGES, f"{field.name} has no range"
    assert set(CHOICES) == {
        "threshold_method",
        "auroc_interval",
        "learners",
        "feature_sets",
        "slice_error_kinds",
        "identifier_feature_set",
    }


@pytest.mark.parametrize(
    "field, value",
    [
        ("min_subgroup_patients", 0),
        ("min_subgroup_events", -1),
        ("min_calibration_flips", 0),
        ("min_test_patients", 1),
        ("seed", -1),
        ("learners", ()),
        ("feature_sets", ("own+nothing",)),
        ("threshold_method", "best"),
        ("slice_top_k", 0),
        ("slice_min_rows", 0),
        ("slice_max_predicates", 5),
        ("slice_error_kinds", ("errors",)),
        ("slice_error_kinds", ()),
    ],
)
def test_bad_values_are_refused_naming_the_setting(field, value):
    with pytest.raises(ConfigError, match=field):
        AnalysisConfig(**{field: value})


def test_shared_constants_are_declared_only_in_the_config():
    for path in [*PACKAGE.rglob("*.py"), *(PROJECT / "pages").glob("*.py")]:
        if path.name == "config.py" and path.parent.name == "analysis":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        assert name.id not in SHARED_CONSTANTS, f"{path}: declares {name.id} again"


def test_the_run_identifier_is_a_non_oracle_member_of_the_ladder():
    config = AnalysisConfig()
    assert config.feature_sets[0] == "probability_only" and config.identifier_feature_set == "own+demographics"
    with pytest.raises(ConfigError, match="identifier_feature_set .* an oracle"):
        AnalysisConfig(identifier_feature_set="all_models+demographics+findings")
    with pytest.raises(ConfigError, match="identifier_feature_set 'own' is not in feature_sets"):
        AnalysisConfig(feature_sets=("own+demographics",), identifier_feature_set="own")
