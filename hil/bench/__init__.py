"""Benchmarks against baselines measured in the same run: ``python -m hil.bench``.

Each measurement runs in a fresh child process (``python -m hil.bench.<module> ...``) so
/proc/self/io and VmHWM belong to that measurement alone.
"""
