"""Proofs: the one zero test (:mod:`.zero`), the per-entry proof at a fixed n
(:mod:`.entries`), the symbolic-n checker (:mod:`.symbolic`) and the generated all-n proof
(:mod:`.alln`)."""
