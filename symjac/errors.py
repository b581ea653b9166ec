"""Errors that reach the user as one line on stderr and exit status 2."""

from __future__ import annotations


class SymjacError(Exception):
    """Bad input or a failure to do the job: the CLI prints the message and exits with 2.

    The message must be one line a user can act on; no traceback is shown.
    """

    exit_code = 2


class CheckFailed(SymjacError):
    """A machine check of a derivation step did not reduce to exactly zero.

    Raised while a document or kernel is generated; nothing is written when it fires.
    """
