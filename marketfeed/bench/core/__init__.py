"""What the benchmarks share: servers, the settings base, child processes, reports, progress."""
