"""Adapters: file replay, queue_log follower, AMI and FreeSWITCH event-socket clients, Asterisk's ARI (REST and
events WebSocket), an AMI session for actions."""
