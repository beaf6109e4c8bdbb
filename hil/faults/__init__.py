"""Fault injection against the real agent and real mosquitto: ``python -m hil.faults``.

Every scenario returns a Result: what was injected, what the consumer saw, and the verdict
of the delivery check (no gap except reported evictions, bounded duplicates, lane order).
"""
