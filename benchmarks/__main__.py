"""``python -m benchmarks``: run the benchmark suite (see benchmarks/README.md)."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
