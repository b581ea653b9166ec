"""Stage: claim -> verdict. Check a hand-derived Jacobian: a formula, matrix notation,
LaTeX, NumPy code or C.

One stage per module (see :mod:`.job` for the chain)::

    truth      FUNCTION, n -> World: the only reader of the catalog and the derivation
    notation   text -> Readings: index formulas, parsed through whitelists (formula,
               matrix, latex), never evaluated
    canon      canonical symbols e_k = exp(x_k), Z = sum e_k: what makes equality decidable
    decide     two matrices -> equal / differs / undecided per entry, exactly
    numeric    evaluation with mpmath or NumPy, points
    formulas   Readings -> ShapeVerdicts (decision, cross-check, counterexample)
    sandbox    the user's code in a child process with time, memory and output limits
    calls      the shapes code is called with, and how its results are read
    pycode     code -> ShapeVerdicts, numerically, with the stability scan
    ccode      a C file compiled and called like NumPy code
    diagnose   a refuted claim -> the named mistake
    result     VerifyResult and JSON;  report: the prose report

A wrong claim is never reported correct: "correct" needs every reading or shape the
claim accepts to be right, proved exactly for formulas and checked numerically (and said
so) for code.
"""

from .budget import TIME_LIMIT
from .job import verify
from .result import Counterexample, Printed, ShapeVerdict, VerifyResult

__all__ = ["TIME_LIMIT", "Counterexample", "Printed", "ShapeVerdict", "VerifyResult", "verify"]
