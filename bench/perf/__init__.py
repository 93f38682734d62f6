"""CPU benchmarks of the suite (issue 8): `make bench` runs them all; see docs/performance.md."""
