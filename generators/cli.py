"""`faceloop generate`, `faceloop persona train`, `faceloop bench generate` and
`faceloop bench fidelity`."""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape

from faceloop.briefs import parse_json, read_text_file
from faceloop.cli.console import console, err, fail, group
from faceloop.errors import FaceloopError, InputError
from faceloop.models import FaceParams


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("generate")(generate_cmd)
    persona = group("Consented personas: train and store LoRA adapters.")
    persona.command("train")(persona_train_cmd)
    app.add_typer(persona, name="persona")
    bench_app.command("generate")(bench_generate_cmd)
    bench_app.command("fidelity")(bench_fidelity_cmd)


def parse_params(text: str) -> FaceParams:
    """FaceParams from JSON text or from a .json file; missing fields take their defaults."""
    source = "--params"
    path = Path(text)
    if not text.lstrip().startswith("{") and path.suffix == ".json":
        if not path.is_file():
            raise InputError(source, [f"(file): {path} not found"])
        source = f"--params file {path}"
        text = read_text_file(path, source)
    raw = parse_json(text, source)
    if not isinstance(raw, dict):
        raise InputError(source, ["(root): expected a JSON object of FaceParams fields"])
    try:
        return FaceParams.model_validate(raw)
    except ValidationError as exc:
        raise InputError.from_validation(source, exc) from exc


def generate_cmd(
    params: Annotated[str, typer.Option("--params", help="FaceParams as JSON (or a .json file)")],
    out: Annotated[Path, typer.Option("--out", help="folder for the PNGs")],
    n: Annotated[int, typer.Option("-n", "--n", min=1, max=1000, help="images")] = 6,
    seed: Annotated[int, typer.Option("--seed", min=0, help="first seed; image i uses seed+i")] = 0,
    backend: Annotated[
        str | None, typer.Option("--backend", help="generator name; default: the setting")
    ] = None,
    size: Annotated[int, typer.Option("--size", help="square side in px")] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Write N images for one set of face parameters, to preview what a parameter does."""
    from PIL import Image

    from faceloop.generators.base import GenerationRequest
    from faceloop.generators.registry import get_generator
    from faceloop.settings import get_settings

    try:
        face = parse_params(params)
        name = backend or get_settings().generator
        gen = get_generator(name)
        reqs = []
        for i in range(n):
            try:
                reqs.append(GenerationRequest(params=face, seed=seed + i, size=size))
            except ValidationError as exc:
                raise InputError("--seed/--size", [str(e["msg"]) for e in exc.errors()]) from exc
        t0 = time.perf_counter()
        images = gen.generate(reqs)
        seconds = time.perf_counter() - t0
    except FaceloopError as exc:
        raise fail(exc) from exc
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for req, img in zip(reqs, images, strict=True):
        path = out / f"{name}-seed{req.seed}-{size}px.png"
        Image.fromarray(img).save(path)
        files.append(str(path))
    (out / "params.json").write_text(face.model_dump_json(indent=1) + "\n")
    result = {
        "backend": name,
        "model_version": gen.model_version,
        "params": face.model_dump(),
        "prompt_only": sorted(gen.PROMPT_ONLY),
        "files": files,
        "seconds": round(seconds, 3),
    }
    if as_json:
        console.print_json(json.dumps(result))
        return
    console.print(
        f"wrote {escape(str(len(files)))} image(s) to "
        f"{escape(str(out))} with {escape(str(name))} in {seconds:.2f}s"
    )
    if gen.PROMPT_ONLY:
        console.print(
            f"[dim]not shown by {name} (prompt-only): {', '.join(sorted(gen.PROMPT_ONLY))}"
        )


def persona_train_cmd(
    images: Annotated[Path, typer.Option("--images", help="folder of photos of the subject")],
    consent: Annotated[Path, typer.Option("--consent", help="consent record (YAML or JSON)")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="base pipeline folder or hub id; default FACELOOP_DIFFUSERS_MODEL"
        ),
    ] = None,
    tiny: Annotated[
        bool, typer.Option("--tiny", help="train a tiny random pipeline (tests, dry runs)")
    ] = False,
    steps: Annotated[int, typer.Option("--steps", min=1)] = 200,
    rank: Annotated[int, typer.Option("--rank", min=1)] = 8,
    lr: Annotated[float, typer.Option("--lr")] = 1e-4,
    size: Annotated[int, typer.Option("--size", help="training resolution")] = 512,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train a persona LoRA for a consented subject and store it in the asset store.

    The consent record is kept in the consent registry (as `faceloop consent add` does); a
    revoked consent stops training. The adapter is sealed under the persona's own key.
    """
    from faceloop.generators import persona
    from faceloop.settings import get_settings
    from faceloop.storage.assets import open_asset_store
    from faceloop.storage.catalog import Catalog
    from faceloop.storage.keys import SubjectKeyStore

    settings = get_settings()
    catalog: Catalog | None = None
    try:
        record = persona.load_consent(consent)  # first: nothing loads without consent
        catalog = Catalog(settings.resolved_database_url)
        catalog.record_consent(record, actor="persona-train")
        state = catalog.consent_status(
            record.persona_id, scope="persona_training", consent_ref=record.consent_id
        )
        if not state.ok:
            raise FaceloopError(f"persona {record.persona_id!r} cannot be trained: {state.reason}")
        if tiny:
            from faceloop.generators.tiny import tiny_pipeline

            pipe, size = tiny_pipeline("sd15"), 64
        else:
            from faceloop.generators.diffusion import DiffusersGenerator

            pipe = DiffusersGenerator(model).pipeline
        pics = persona.load_images(images, size)
        result = persona.train_persona_lora(pipe, pics, record, steps=steps, rank=rank, lr=lr)
        stored = persona.store_adapter(open_asset_store(settings), result, SubjectKeyStore(catalog))
    except FaceloopError as exc:
        raise fail(exc) from exc
    finally:
        if catalog is not None:
            catalog.close()
    summary = {
        "asset_id": stored.asset_id,
        "uri": stored.uri,
        "metadata": stored.meta_uri,
        "consent_id": record.consent_id,
        "persona_id": record.persona_id,
        "loss_before": round(result.loss_before, 5),
        "loss_after": round(result.loss_after, 5),
    }
    if as_json:
        console.print_json(json.dumps(summary))
    else:
        console.print(
            f"trained persona {record.persona_id!r} (consent {record.consent_id}): loss "
            f"{result.loss_before:.4f} -> {result.loss_after:.4f}; adapter {stored.uri}"
        )


def bench_backend(name: str, sizes: list[int], n: int) -> dict[str, Any]:
    """Time one backend in this process; run in a fresh process so peak memory is its own."""
    import resource

    import torch

    from faceloop.generators.base import GenerationRequest
    from faceloop.generators.registry import get_generator

    gen = get_generator(name)
    gen.generate([GenerationRequest(params=FaceParams(), seed=0, size=64)])  # load + warm up
    rows = []
    for size in sizes:
        reqs = [GenerationRequest(params=FaceParams(), seed=s, size=size) for s in range(n)]
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        gen.generate(reqs)
        dt = time.perf_counter() - t0
        rows.append(
            {
                "backend": name,
                "size": size,
                "images": n,
                "seconds": round(dt, 3),
                "images_per_s": round(n / dt, 2),
                # ru_maxrss is KiB on Linux: the process's peak so far
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1)
                if cuda
                else None,
            }
        )
    return {"model_version": gen.model_version, "rows": rows}


def bench_generate_cmd(
    backends: Annotated[str, typer.Option("--backends", help="comma-separated")] = "dcgan,onnx",
    sizes: Annotated[str, typer.Option("--sizes", help="comma-separated px")] = "256,512,1024",
    n: Annotated[int, typer.Option("-n", "--n", min=1)] = 6,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Images/s and peak memory per backend and size on this machine."""
    import os
    import platform

    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise fail(InputError("--sizes", [f"{sizes!r}: expected integers like 256,512"])) from exc
    results: list[dict[str, Any]] = []
    versions = {}
    for name in [b.strip() for b in backends.split(",") if b.strip()]:
        # a fresh process per backend: peak memory is then that backend's own
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            try:
                out = pool.submit(bench_backend, name, size_list, n).result()
            except FaceloopError as exc:
                raise fail(exc) from exc
        versions[name] = out["model_version"]
        results += out["rows"]
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "model_versions": versions,
        "results": results,
    }
    if as_json:
        console.print_json(json.dumps(report))
        return
    for r in results:
        console.print(
            f"{r['backend']:>10} {r['size']:>5}px  {r['images_per_s']:>7.2f} img/s  "
            f"peak RSS {r['peak_rss_mib']} MiB"
        )


def bench_fidelity_cmd(
    images: Annotated[
        int, typer.Option("--images", min=1, help="images per parameter value and seed set")
    ] = 64,
    seeds: Annotated[
        str,
        typer.Option(
            "--seeds",
            help="tuning (seeds a rendering change may be tuned on), heldout (never tuned "
            "on: the verdict) or both",
        ),
    ] = "both",
    backend: Annotated[str, typer.Option("--backend", help="generator to judge")] = "dcgan",
    size: Annotated[int, typer.Option("--size", min=64, help="image side, px")] = 256,
    params: Annotated[
        str | None,
        typer.Option("--params", help="comma-separated parameters (default: every measurable)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Is what is asked what is shown: per face parameter and value, the share of generated
    images that measure as requested, and what they measured as instead."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from faceloop.generators.fidelity import PARAM_ORDER, bench_fidelity, total_images
    from faceloop.generators.registry import get_generator

    sets = {"tuning": ["tuning"], "heldout": ["heldout"], "both": ["tuning", "heldout"]}
    if seeds not in sets:
        raise fail(InputError("--seeds", [f"{seeds!r}: use tuning, heldout or both"]))
    chosen = list(PARAM_ORDER)
    if params is not None:
        chosen = [p.strip() for p in params.split(",") if p.strip()]
        bad = [p for p in chosen if p not in PARAM_ORDER]
        if bad or not chosen:
            raise fail(
                InputError("--params", [f"{bad or params!r}: use some of {', '.join(PARAM_ORDER)}"])
            )
    try:
        gen = get_generator(backend)
    except FaceloopError as exc:
        raise fail(exc) from exc
    with Progress(
        TextColumn("fidelity"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,  # stderr: with --json, stdout stays one JSON document
        transient=as_json,
    ) as progress:
        task = progress.add_task("images", total=total_images(images, sets[seeds], chosen))
        try:
            report = bench_fidelity(
                gen,
                images,
                sets[seeds],
                size=size,
                params=chosen,
                on_image=lambda: progress.advance(task),
            )
        except FaceloopError as exc:
            raise fail(exc) from exc
    if as_json:
        print(json.dumps(report, indent=2))
        return
    _print_fidelity(report)


def _print_fidelity(report: dict[str, Any]) -> None:
    from rich.table import Table

    for name, table in report["seed_sets"].items():
        out = Table(
            title=f"{report['generator']}: {name} seeds, {report['images_per_setting']} "
            "images per value"
        )
        for col in ("parameter", "value", "shown", "measured as"):
            out.add_column(col)
        for param, res in table.items():
            if param == "skin_bands":
                continue
            for value, row in res["values"].items():
                share = "-" if row["share_shown"] is None else f"{row['share_shown']:.2f}"
                seen = ", ".join(f"{k} {v}" for k, v in row["measured"].items())
                out.add_row(param, value, share, escape(seen))
        console.print(out)
        bands = table.get("skin_bands")
        if bands:
            console.print(
                f"Monk 1-3 measured light: {bands['light_of_monk_1_3']}; "
                f"Monk 8-10 measured dark: {bands['dark_of_monk_8_10']}"
            )
    t = report["target"]
    if t.get("judged_on"):
        console.print(
            f"target (>= {t['share']} each, {t['judged_on']} seeds): "
            f"{'met' if t['met'] else 'NOT met'}"
        )
