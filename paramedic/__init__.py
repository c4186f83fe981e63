"""Paramedic: incident management with self-healing for Kubernetes."""

__version__ = "0.1.0"
