"""`faceloop bench export`: watermark recall of placement exports per format and quality.

Runs the exporter the export activity runs (guardrails/export.py) on signed creatives: the
embedded generator's faces (seeded, varied parameters) and two real public-domain portraits,
signed with throwaway local keys. For each format and quality it reports the watermark's
recall read back from the exported bytes, how many exports would be refused, and the time
per export; `without_remark` is the recall when the signed original's watermark is only
cropped and resized, not embedded again (why the exporter embeds it again).
"""

from __future__ import annotations

import hashlib
import io
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from faceloop.models import (
    PLACEMENTS,
    Asset,
    ExportConfig,
    ExportFormat,
    FaceParams,
    SearchSpace,
)


def _faces(n: int, first: int = 0) -> list[tuple[str, np.ndarray]]:
    import cv2
    import skimage.data
    from matplotlib import cbook

    from faceloop.generators.base import GenerationRequest
    from faceloop.generators.registry import get_generator

    rng = random.Random(first)
    requests = []
    space = SearchSpace()
    for seed in range(first, first + n):
        params = FaceParams(
            age_band=rng.choice(space.age_band),
            expression=rng.choice(space.expression),
            skin_tone=rng.randint(1, 10),
            background=rng.choice(space.background),
            lighting=rng.choice(space.lighting),
            framing=rng.choice(space.framing),
        )
        requests.append(GenerationRequest(params=params, seed=seed))
    generated = get_generator("dcgan").generate(requests)
    out = [(f"dcgan-{first + i}", im) for i, im in enumerate(generated)]
    out.append(("astronaut", np.ascontiguousarray(skimage.data.astronaut())))
    bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    assert bgr is not None, "matplotlib's sample data lacks grace_hopper.jpg"
    out.append(("grace_hopper", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return out


def bench_export(
    faces: int = 8, qualities: tuple[int, ...] = (80, 90, 95), first_seed: int = 0
) -> dict[str, Any]:
    """Recall per (format, quality) over `faces` generated faces (seeds from `first_seed`)
    and two real photos."""
    from PIL import Image

    from faceloop.guardrails.activities import Signer
    from faceloop.guardrails.export import (
        SAFE_AREAS,
        Exporter,
        encode,
        output_size,
        plan_window,
        render,
    )
    from faceloop.guardrails.imageio import decode_image
    from faceloop.guardrails.provenance import Ledger, Provenance, init_keys
    from faceloop.guardrails.watermark import MATCH_BITS, PAYLOAD_BITS, bit_errors, decode

    images = _faces(faces, first_seed)
    formats: list[ExportFormat] = ["jpeg", "webp"]
    with tempfile.TemporaryDirectory() as tmp:
        keys = init_keys(Path(tmp) / "keys")
        signer = Signer(
            Provenance(keys.chain, keys.key, keys.ca), Ledger(Path(tmp) / "l.jsonl"), "dwtDctSvd"
        )
        exporter = Exporter(signer.provenance, signer.method)
        errors: dict[tuple[str, int], list[int]] = {}
        seconds: dict[tuple[str, int], list[float]] = {}
        fits: dict[str, int] = {}
        plain: list[int] = []
        for name, rgb in images:
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="PNG")
            generated = hashlib.sha256(buf.getvalue()).hexdigest()
            h, w = rgb.shape[:2]
            asset = Asset(
                asset_id=generated,
                uri=f"file:///{name}",
                width=w,
                height=h,
                generator="bench",
                model_version="0",
                seed=0,
            )
            signed = signer.sign(rgb, asset, "AI-generated image", "bench", name)
            signed_id = hashlib.sha256(signed).hexdigest()
            for q in qualities:
                config = ExportConfig(formats=formats, jpeg_quality=q, webp_quality=q)
                start = time.perf_counter()
                results = exporter.export(signed, signed_id, name, list(PLACEMENTS), config)
                per = (time.perf_counter() - start) / len(results)
                for r in results:
                    key = (r.record.media_type, q)
                    errors.setdefault(key, []).append(r.record.watermark_bit_errors)
                    seconds.setdefault(key, []).append(per)
                    if q == qualities[0] and r.record.media_type == "image/jpeg":
                        fits[r.record.fit] = fits.get(r.record.fit, 0) + 1
            # the baseline: the signed original's own mark, cropped and resized, JPEG 95
            marked = decode_image(signed)
            face = exporter.face(marked)
            for placement in PLACEMENTS:
                spec = SAFE_AREAS[placement]
                ow, oh = output_size(spec, None, marked.shape[1], marked.shape[0])
                framed = render(marked, plan_window(w, h, spec, face), ow, oh)
                back = decode_image(encode(framed, "jpeg", 95))
                plain.append(bit_errors(decode(back, signer.method), generated[:8]))

    def recall(errs: list[int]) -> dict[str, Any]:
        r = [(PAYLOAD_BITS - e) / PAYLOAD_BITS for e in errs]
        return {
            "exports": len(errs),
            "mean_recall": round(statistics.fmean(r), 4),
            "min_recall": round(min(r), 4),
            "refused": sum(e > MATCH_BITS for e in errs),
        }

    return {
        "images": [n for n, _ in images],
        "placements": list(PLACEMENTS),
        "method": "dwtDctSvd",
        "refused_above_bit_errors": MATCH_BITS,
        "by_format": [
            {
                "media_type": mt,
                "quality": q,
                **recall(errs),
                "ms_per_export": round(1000 * statistics.fmean(seconds[(mt, q)]), 1),
            }
            for (mt, q), errs in sorted(errors.items())
        ],
        "fit": fits,
        "without_remark": recall(plain) | {"note": "signed original's mark only, JPEG 95"},
    }


__all__ = ["bench_export"]
