"""Device emulators that speak the real bytes and register maps (demo, tests, HIL rig)."""
