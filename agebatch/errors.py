"""The one error type a user can meet: a bad input, said in one sentence."""

from __future__ import annotations


class InputError(Exception):
    """A problem with the user's input (a file, folder, column or model) that they can fix."""
