"""Adapters: file replay, queue_log follower, AMI and FreeSWITCH event-socket clients."""
