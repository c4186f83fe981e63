"""Development tools: the local control plane, its real node and DNS, the demo, process and
polling helpers shared by the tests and the benchmarks.

Not part of the `paramedic` distribution (neither the wheel nor the image): they need the
repository (tools/, hack/, manifests/) and run from its root (`python -m devtools.cluster`).
The runtime packages never import them (.importlinter).
"""
