"""callstream_core."""
