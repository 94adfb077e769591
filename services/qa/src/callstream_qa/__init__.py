"""callstream_qa."""
