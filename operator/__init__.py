"""The Kopf operator (imported as paramedic.operator)."""
