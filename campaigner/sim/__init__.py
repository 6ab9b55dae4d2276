"""The fake CAMS: a simulated gateway (faults, records, gateway decisions) served over loopback
HTTP (server) or an httpx mock (mock); each accepted message's receipts (fate), pushed to a
callback base (push); the in-process sandbox of ``send --sandbox`` (sandbox); a fake of the SMQ
queues (queues); and the child-process harness tests and benches share."""
