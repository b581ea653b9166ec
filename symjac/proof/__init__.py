"""Proofs: the one zero test (:mod:`.zero`), the per-entry proof at a fixed n
(:mod:`.entries`) and the derivation for symbolic n."""

from . import legacy as _legacy

# (transitional: the hand-written all-n proofs, until the generated ones replace them)
globals().update({k: v for k, v in vars(_legacy).items() if not k.startswith("__")})
__all__ = list(_legacy.__all__)
