"""Sending requests to CAMS: pacing, the HTTP/1.1 parser and transport, the client, the pool."""
