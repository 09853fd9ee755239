"""faceloop.connectors"""
