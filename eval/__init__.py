"""Benchmarks of dcsc-preproc that write tables and JSON (restoration quality, detection, speed)."""
