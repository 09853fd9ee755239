"""faceloop.workflows"""
