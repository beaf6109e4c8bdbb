"""MQTT uplinks: one client per channel, fed from that channel's store."""
