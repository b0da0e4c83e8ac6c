"""tidings: event-driven systems on Apache Kafka, for Python."""
