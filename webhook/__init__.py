"""The Alertmanager webhook receiver (imported as paramedic.webhook)."""
