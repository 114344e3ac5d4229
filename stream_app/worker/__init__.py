"""The Kafka shell around the pure domain core: topics, Faust app, agents, HTTP."""
