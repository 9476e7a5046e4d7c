"""On-demand benchmarks (``make bench``); each prints ratios measured in one run."""
