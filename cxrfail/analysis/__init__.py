"""The CheXbreak analysis: thresholds, outcomes, subgroups, regression, identifiers, SHAP and flipping.

Each step is a pure function of arrays or DataFrames and its parameters; `cxrfail.analysis.runner` runs
them in order for every (model, finding).
"""
