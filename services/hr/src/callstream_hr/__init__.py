"""callstream_hr."""
