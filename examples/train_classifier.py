"""Train a linear classifier with the generated softmax cross-entropy op, next to PyTorch's own.

    symjac derive softmax_cross_entropy -n 8 --target torch   # generated/..._n8_torch.py, .c, .h
    python examples/train_classifier.py                       # derives them itself if missing

Two copies of the same model (8 classes, 5 features, synthetic data, float64) take 50
steps of gradient descent, one with ``softmax_cross_entropy_n8_torch.softmax_cross_entropy``
(the generated C kernels), one with ``torch.nn.functional.cross_entropy``; the losses agree
to 1e-12 at every step (the exit status is 1 otherwise). Then ``torch.autograd.gradcheck``
checks the op's gradient against finite differences.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

CLASSES, FEATURES, SAMPLES, STEPS, RATE = 8, 5, 512, 50, 0.5


def load_op(folder: Path):
    """The generated module, derived into ``folder`` first when it is not there."""
    if not (folder / f"softmax_cross_entropy_n{CLASSES}_torch.py").exists():
        import symjac

        symjac.derive("softmax_cross_entropy", CLASSES, targets="torch", out_dir=folder)
    sys.path.insert(0, str(folder))
    return importlib.import_module(f"softmax_cross_entropy_n{CLASSES}_torch")


def data(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and soft targets: a random linear teacher's softmax, sharpened."""
    x = torch.randn(SAMPLES, FEATURES, generator=generator, dtype=torch.float64)
    teacher = torch.randn(FEATURES, CLASSES, generator=generator, dtype=torch.float64)
    return x, torch.softmax(3 * x @ teacher, dim=-1)


def train(loss_fn, x, targets, generator: torch.Generator) -> list[float]:
    """Full-batch gradient descent on a linear model; the loss before each step."""
    w = (0.1 * torch.randn(FEATURES, CLASSES, generator=generator,
                           dtype=torch.float64)).requires_grad_()
    b = torch.zeros(CLASSES, dtype=torch.float64, requires_grad=True)
    losses = []
    for _ in range(STEPS):
        loss = loss_fn(x @ w + b, targets)
        losses.append(loss.item())
        gw, gb = torch.autograd.grad(loss, (w, b))
        with torch.no_grad():
            w -= RATE * gw
            b -= RATE * gb
    return losses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("generated"),
                        help="folder of the generated module (default: generated/)")
    op = load_op(parser.parse_args().out)

    def generated_loss(logits, targets):
        return op.softmax_cross_entropy(logits, t=targets).mean()

    def pytorch_loss(logits, targets):
        return F.cross_entropy(logits, targets)

    x, targets = data(torch.Generator().manual_seed(0))
    ours = train(generated_loss, x, targets, torch.Generator().manual_seed(1))
    theirs = train(pytorch_loss, x, targets, torch.Generator().manual_seed(1))
    print("step  generated op        F.cross_entropy")
    for step in (0, 1, 2, 10, 25, STEPS - 1):
        print(f"{step:4d}  {ours[step]:.15f}  {theirs[step]:.15f}")
    worst = max(abs(a - b) for a, b in zip(ours, theirs))
    print(f"{STEPS} steps: max |loss - F.cross_entropy loss| = {worst:.3e}")

    logits = torch.randn(4, CLASSES, dtype=torch.float64, requires_grad=True)
    ok = torch.autograd.gradcheck(lambda z: op.softmax_cross_entropy(z, t=targets[:4]),
                                  (logits,))
    print(f"gradcheck: {'passed' if ok else 'FAILED'}")
    return 0 if worst <= 1e-12 and ok and ours[-1] < ours[0] else 1


if __name__ == "__main__":
    sys.exit(main())
