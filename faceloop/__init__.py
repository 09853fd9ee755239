"""faceloop: a durable, governed closed loop for AI-face ad campaigns."""

__version__ = "0.1.0"
__all__ = ["__version__"]
