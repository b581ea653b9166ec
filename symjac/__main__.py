"""``python -m symjac`` is the same program as the ``symjac`` console script."""

try:
    from .cli import console
except KeyboardInterrupt:  # Ctrl-C while the command line loads (before console() runs)
    import sys

    print("symjac: interrupted; no file was changed", file=sys.stderr)
    sys.exit(130)

console()
