"""FAKES: local stand-ins for ad-platform APIs, for tests and the soak bench.

Nothing here talks to a real platform. Each fake implements the documented subset of one
platform's API that its connector uses, including the platform's error bodies and usage
headers, and counts on its own side what it committed (so duplicates and lost updates are
measured by the server, not by the client that might be wrong). `faults.FaultyTransport`
injects the faults a real network and platform produce: a timeout after the server
committed, 5xx, throttles.
"""
