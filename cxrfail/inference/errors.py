"""The error the inference engine raises for anything the user can fix: a bad model spec, card or checkpoint,
an unusable device, a missing weights file. Unreadable images are not errors: they are recorded as failures
and the run goes on (see `cxrfail.inference.engine`)."""

from __future__ import annotations

from cxrfail.errors import CxrfailInputError


class InferenceError(CxrfailInputError):
    """A model, card, checkpoint, device or cache setting cannot be used as given.

    A `ValueError` (through `CxrfailInputError`): the CLI turns it into exit status 2 with one line on stderr.
    """
