"""Adapters of the routing service: protobuf mapping, the Kafka command log, queue configuration."""
