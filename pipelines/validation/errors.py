"""What can go wrong when validating, as exceptions rooted at :class:`DataValidationError`.

Bad *rows* are not exceptions: they come back as verdicts and go to the dead-letter topic. These errors are
for a broken setup (a suite GX cannot load, a frame that lacks a column the suite checks), which no amount
of dead-lettering would fix and which must stop the job on its first batch instead of mislabelling data.
"""

from __future__ import annotations

from pipelines.errors import FeaturestreamError


class DataValidationError(FeaturestreamError):
    """Root of every error the validation package raises on purpose."""


class SuiteLoadError(DataValidationError):
    """The expectation suite is missing, is not GX's JSON format, or holds something rows cannot be judged by."""


class InputFrameError(DataValidationError):
    """The frame handed in does not match the suite's column contract (missing column, unusable dtype)."""


class GXResultError(DataValidationError):
    """GX answered something other than what was asked (a result missing, or rows it counted but did not list).

    Raised rather than guessed around: verdicts built on an inconsistent result could lose rows.
    """
