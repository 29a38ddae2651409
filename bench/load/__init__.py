"""The soak: the production topology on one machine, under stepped load and through its faults
(bench/README.md, Soak)."""
