"""Stage: [FUNCTION, n] -> World, the truth every claim is judged against.

This is the only part of :mod:`symjac.verify` that reads the catalog and the derivation.
It builds, for one function at one size n, everything written canonically
(:mod:`..canon`): the outputs y_k (and softmax probabilities s_k, a target t_k), the
proven closed form J_ij as one index-free expression, the function's parameters, and a
few facts the diagnosis needs (structure terms, derivatives with respect to intermediate
stages). Everything else in the package talks to a :class:`.world.World` only.

One stage per module::

    program  FUNCTION -> what is known before any derivation: the names a claim may
             use, the parameter values, the program's expressions written plainly
    build    [FUNCTION, n] -> World: the derivation, and the canonical half written
    world    World: what the function is, its canonical half, its closed form, and the
             facts the diagnosis builds candidates from
    numbers  World, x -> numbers: the program run at x, the closed form's symbols there
    second   World -> the second derivatives (``--hessian``)

Re-pointing to another engine means rewriting :func:`.build.build_world`,
:func:`.second.second_closed` and the few methods of :class:`.world.World` that read the
derivation (``_d``) or the catalog; their results are plain SymPy expressions and numbers.
"""
