"""Sensor drivers: each a thin layer over a hardware interface and a sans-I/O protocol."""
