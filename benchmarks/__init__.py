"""orbitcube benchmarks: each script measures against a baseline run in the same process tree."""
