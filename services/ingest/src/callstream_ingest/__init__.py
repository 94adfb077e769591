"""callstream_ingest."""
