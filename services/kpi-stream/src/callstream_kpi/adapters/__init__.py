"""Adapters of the KPI stream: ClickHouse facts and queries, Kafka in and out."""
