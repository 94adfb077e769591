-- The Kafka offsets the stream took facts from, kept with the facts (issue 17 item 5): per consumer group
-- and partition, the next offset to read after the last batch whose facts are stored. Written after a
-- batch's facts and before the batch is acknowledged, so it is never behind the group's committed offset
-- unless the facts are missing (a new or wiped store under an old group): the worker then refuses to start.
CREATE TABLE IF NOT EXISTS consumed_offsets (
    consumer_group String,
    topic String,
    partition UInt32,
    next_offset UInt64
) ENGINE = ReplacingMergeTree(next_offset)
ORDER BY (consumer_group, topic, partition)
SETTINGS non_replicated_deduplication_window = 10000;
