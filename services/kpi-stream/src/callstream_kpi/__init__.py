"""callstream_kpi."""
