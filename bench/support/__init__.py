"""What the benchmarks share: stores, charts, servers, load, statistics and the report."""
