"""Ingest's use cases: the produce path every adapter shares (`event_sink.EventSink`: events to Kafka keyed,
confirmed, counted), the ARI bridge's loop (`ari_bridge.AriBridge`: Asterisk's calls routed by the router), and the
test center's call generator (`call_generator.CallGenerator`)."""
