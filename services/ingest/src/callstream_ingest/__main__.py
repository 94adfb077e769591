"""`python -m callstream_ingest`: the ingest process (webhook API, queue_log follower, AMI / FreeSWITCH clients)."""

from callstream_ingest.entrypoints.ingest_server import main

main()
