"""The sandbox ad platform: an HTTP service with a simulated audience (a fake of an ad platform, named so)."""
