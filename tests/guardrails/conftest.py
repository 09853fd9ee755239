"""Images for the guardrail tests: generated faces (embedded DCGAN) and a real photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from matplotlib import cbook

from faceloop.generators.base import GenerationRequest
from faceloop.generators.registry import get_generator
from faceloop.models import FaceParams


@pytest.fixture(scope="session")
def generated_faces() -> list[np.ndarray]:
    """Four 256 px generated faces, each with one face YuNet finds (seeds 0-3)."""
    gen = get_generator("dcgan")
    return gen.generate([GenerationRequest(params=FaceParams(), seed=s) for s in range(4)])


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    """A real, public-domain portrait shipped with matplotlib (512x600)."""
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    bgr = cv2.imread(str(path))
    assert bgr is not None, f"could not read {path}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real, public-domain portrait shipped with scikit-image (512x512)."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


@pytest.fixture
def guard_home(tmp_path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A fresh data dir with an identity key, as a deployment would configure it."""
    from faceloop.guardrails.identity import new_identity_key

    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACELOOP_IDENTITY_KEY", new_identity_key())
    for var in ("FACELOOP_C2PA_CERT", "FACELOOP_C2PA_KEY", "FACELOOP_C2PA_TRUST_ANCHORS"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"
