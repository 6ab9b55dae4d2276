"""The fake CAMS: a simulated gateway (faults, records, gateway decisions) served over loopback
HTTP (server) or an httpx mock (mock), and the child-process harness tests and benches share."""
