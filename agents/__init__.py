"""faceloop.agents"""
