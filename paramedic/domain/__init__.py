"""Pure domain logic: no Kubernetes, no Kopf, no I/O."""
