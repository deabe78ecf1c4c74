"""``python -m mrt.metrics.weights fetch|verify|path`` (the project's setup step runs ``fetch``)."""

from mrt.metrics.weights.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
