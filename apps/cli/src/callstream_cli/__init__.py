"""callstream_cli."""
