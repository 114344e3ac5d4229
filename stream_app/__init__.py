"""stream_app: a real-time customer-session processor on Kafka."""

__version__ = "0.3.0"
