"""Durable, encrypted, per-channel stores with priority lanes."""
