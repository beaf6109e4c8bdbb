"""Welfare rules for a resident living alone: inactivity, falls, outings, room climate.

Pure (no I/O, no threads, no wall clock): readings in, events out, the clock is the reading's
time. ``rules`` holds the rules for one resident, ``engine`` routes readings to every
resident of a site, ``replay`` drives an engine over recorded or synthetic readings.
"""
