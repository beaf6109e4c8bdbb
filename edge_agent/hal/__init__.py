"""Hardware abstraction: small interfaces with a real and an emulated implementation."""
