"""edge-agent: durable, encrypted store-and-forward for Raspberry Pi sensor nodes."""

__version__ = "0.1.0"
