"""The web console: responders work incidents in a browser, with their own Kubernetes rights."""
