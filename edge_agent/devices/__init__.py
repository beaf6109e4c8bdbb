"""Devices: one package per device family (driver, emulator, options, README, sample, tests).

``edge_agent/devices/<family>/`` holds ``driver.py`` (the real device: talks to ``ctx.hw``,
feeds a sans-I/O parser from edge_agent.protocols), ``emulator.py`` (the fake device behind
the emulated hardware backend), ``options.py`` (its ``sensors:`` keys), ``README.md``,
``sample.yaml`` and ``tests/``; its ``__init__`` declares the SensorType(s). What drivers
share lives here: base (Sensor, PollingSensor, StreamSensor, SensorContext), sensor_type,
registry, i2c_sensor, serial_sensor, gpio_common, fall_detect.
"""
