"""The HTTP server: reads candidate lists from Redis, applies request-time rules, ingests events."""
