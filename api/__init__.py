"""HTTP and CLI: the composition root. The only place that wires infrastructure."""
