"""faceloop.generators"""
