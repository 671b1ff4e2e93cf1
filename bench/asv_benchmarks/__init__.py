"""asv benchmarks (`asv run`): grouped by what they measure, parameters declared."""
