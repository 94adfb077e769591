"""callstream_routing."""
