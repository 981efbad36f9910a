"""cxrfail: failure analysis of chest X-ray classifiers (a CheXbreak reproduction as software)."""

__version__ = "0.1.0"
