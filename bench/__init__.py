"""oneScreen benchmarks: six figures with their targets, side by side with the peer servers.

`python -m bench` runs all six (about 7.5 minutes on a 2-core machine) and prints every
target with PASS / FALLS SHORT; `python -m bench --smoke` runs each with tiny loads in
seconds (CI runs it, never asserting a time). BENCHMARKS.md says what each measures.
Benchmarks print figures; they never assert timings (no test asserts a time).
"""
