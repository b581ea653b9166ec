"""The stages of a function given as SymPy expressions of n explicit inputs (``symjac.custom``):
chain rule over the outputs' CSE (:mod:`.chain`), structure (:mod:`.structure`), proof
(:mod:`.proof`, numbers in :mod:`.numbers`), the kernels' programs (:mod:`.plan`) and the
time limit (:mod:`symjac.budget`). :mod:`symjac.custom` runs them in order."""
