"""faceloop.playbooks"""
