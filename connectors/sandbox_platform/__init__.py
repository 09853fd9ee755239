"""The sandbox ad platform: an HTTP service with a simulated audience.

A fake of an ad platform, named so: it lets the whole loop run offline and reproducibly.
"""
