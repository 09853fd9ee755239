"""faceloop.guardrails"""
