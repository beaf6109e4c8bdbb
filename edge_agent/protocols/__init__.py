"""Sans-I/O device protocol parsers: feed bytes, get frames or ProtocolErrors."""
