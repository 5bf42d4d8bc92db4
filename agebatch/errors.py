"""The errors a user can meet, each said in one sentence."""

from __future__ import annotations


class InputError(Exception):
    """A problem with the user's input (a file, folder, column or model) that they can fix."""


class OutputError(InputError):
    """The output folder cannot take the day: read-only, full, or over a file-size limit."""


class CoverageRefused(InputError):
    """The coverage gate refused to publish the day (the CLI exits with status 3)."""
