"""Hardware-in-the-loop rig: benchmarks (``python -m hil.bench``) and fault injection
(``python -m hil.faults``), both driving the real agent against real mosquitto brokers."""
