"""The docs say what the code does. Each check takes its truth from the code (pyproject's
package map, the Typer command tree, the stages and activities of CampaignWorkflow), so a
folder, command, stage or activity the docs miss or invent fails here."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import typer
from typer.core import TyperGroup

from faceloop.cli import app
from faceloop.models import CampaignState

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
PACKAGE_DIR: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "setuptools"
]["package-dir"]
NOT_A_LOOP_STAGE = {"orchestrate", "core", ""}


def section(text: str, heading: str) -> str:
    """The body of `## heading`, up to the next `## `."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table(text: str) -> list[list[str]]:
    """The rows (cells stripped) of the first markdown table in `text`, without its header;
    `\\|` inside a cell is a literal bar."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert len(lines) > 2, f"no table in:\n{text[:200]}"
    first = text.splitlines().index(lines[0])
    rows = []
    for line in text.splitlines()[first + 2 :]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([c.strip().replace("\\|", "|") for c in cells])
    return rows


def commands() -> dict[tuple[str, ...], typer.core.TyperCommand | TyperGroup]:
    """Every command of `faceloop` by its path; () is `faceloop` itself."""
    found = {}

    def walk(cmd: typer.core.TyperCommand | TyperGroup, path: tuple[str, ...]) -> None:
        found[path] = cmd
        if isinstance(cmd, TyperGroup):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))  # type: ignore[arg-type]

    walk(typer.main.get_command(app), ())  # type: ignore[arg-type]
    return found


COMMANDS = commands()


def workflow_stages() -> list[str]:
    """The `stage` values CampaignWorkflow sets on its state: the one a campaign has before
    the workflow sets any, those of a round in the order the code sets them, then the final
    ones (`_finish`)."""
    tree = ast.parse((ROOT / "workflows" / "campaign.py").read_text(encoding="utf-8"))
    in_round: list[tuple[int, int, str]] = []
    final: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        value: ast.expr | None = None
        into = in_round
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "_stage":  # self._stage("plan")
                value = node.args[0]
            elif node.func.attr == "_finish":  # self._finish(state, "done", reason)
                value, into = node.args[1], final
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Attribute) and t.attr == "stage" for t in node.targets
        ):
            value = node.value  # state.stage = "propose"
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            into.append((value.lineno, value.col_offset, value.value))
    stages = [str(CampaignState.model_fields["stage"].default)]
    for _, _, stage in [*sorted(in_round), *sorted(final)]:
        if stage not in stages:
            stages.append(stage)
    assert len(stages) > 5, f"found only {stages} in workflows/campaign.py: is the parser stale?"
    return stages


def module_path(module: str) -> str:
    """faceloop.agents.activities -> agents/activities.py, by pyproject's package map."""
    package = max((p for p in PACKAGE_DIR if module.startswith(p + ".")), key=len)
    return "/".join([PACKAGE_DIR[package], *module[len(package) + 1 :].split(".")]) + ".py"


# --------------------------------------------------------------------------- README


def test_readme_layout_lists_the_package_folders_in_loop_order() -> None:
    rows = table(section(README, "Layout"))
    folders = []
    for folder, imports_as, *_ in rows:
        m = re.fullmatch(r"`(\w+)/`", folder)
        assert m, f"README layout row {folder!r}: expected `name/`"
        folders.append(m.group(1))
        assert PACKAGE_DIR.get(imports_as.strip("`")) == m.group(1), (
            f"README says {folder} imports as {imports_as}; pyproject.toml's package-dir disagrees"
        )
    assert len(folders) == len(set(folders)), f"a folder is listed twice: {folders}"
    assert set(folders) == set(PACKAGE_DIR.values()), (
        f"README layout lists {sorted(folders)}; the package folders are "
        f"{sorted(set(PACKAGE_DIR.values()))}"
    )
    assert all((ROOT / f).is_dir() for f in folders)

    order = workflow_stages()
    positions = []
    for row in rows:
        stages = [s.strip() for s in row[2].split(",")]
        unknown = [s for s in stages if s not in order and s not in NOT_A_LOOP_STAGE]
        assert not unknown, f"README layout: {row[0]} names stage(s) {unknown} the workflow lacks"
        if stages[0] in order:
            positions.append((order.index(stages[0]), row[0]))
    assert positions == sorted(positions), (
        f"README layout is not in loop order ({' -> '.join(order)}): "
        f"{[folder for _, folder in positions]}"
    )


def readme_commands() -> list[tuple[list[tuple[str, ...]], list[str]]]:
    """Per row of README's command table: the command paths it names (`approve|reject` names
    two) and the options it shows."""
    out = []
    for row in table(section(README, "Commands")):
        m = re.match(r"`([^`]+)`", row[0])
        assert m, f"README command row {row[0]!r}: expected `faceloop ...`"
        tokens = m.group(1).split()
        assert tokens[0] == "faceloop", row[0]
        paths: list[tuple[str, ...]] = [()]
        rest = tokens[1:]
        while rest and all(isinstance(COMMANDS[p], TyperGroup) for p in paths):
            paths = [(*p, name) for p in paths for name in rest.pop(0).split("|")]
            missing = [" ".join(p) for p in paths if p not in COMMANDS]
            assert not missing, f"README names `faceloop {missing[0]}`, which does not exist"
        options = [m.group(1) for t in rest if (m := re.match(r"\[?(-{1,2}[a-z][\w-]*)", t))]
        out.append((paths, options))
    return out


def test_readme_command_table_names_every_command_and_nothing_else() -> None:
    rows = readme_commands()
    named = {p[0] for paths, _ in rows for p in paths}
    top = {p[0] for p in COMMANDS if len(p) == 1}
    assert named == top, (
        f"README's command table misses {sorted(top - named)} and names {sorted(named - top)}"
    )
    for paths, options in rows:
        for path in paths:
            params = COMMANDS[path].params
            known = {o for p in params for o in (*p.opts, *p.secondary_opts)}
            for option in options:
                assert option in known, f"README shows `faceloop {' '.join(path)} {option}`"


def test_readme_links_resolve() -> None:
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


# --------------------------------------------------------------------------- architecture


def stage_table() -> list[list[str]]:
    rows = table(section(ARCHITECTURE, "One workflow per campaign, a bounded run of rounds"))
    assert rows and len(rows[0]) == 5, "docs/architecture.md: the stage table has 5 columns"
    return rows


def test_architecture_stage_table_lists_the_workflows_stages() -> None:
    documented = {s.strip() for row in stage_table() for s in row[0].split("/")}
    in_code = set(workflow_stages())
    assert documented == in_code, (
        f"docs/architecture.md's stage table misses {sorted(in_code - documented)} and names "
        f"{sorted(documented - in_code)}; the stages are those workflows/campaign.py sets"
    )


def test_architecture_stage_table_names_the_activities_the_workflow_runs() -> None:
    import faceloop.workflows.campaign as wf

    source = (ROOT / "workflows" / "campaign.py").read_text(encoding="utf-8")
    ran = set(re.findall(r"\b(\w+Activities)\.(\w+)\b", source))
    named = {
        pair for row in stage_table() for pair in re.findall(r"`(\w+Activities)\.(\w+)`", row[2])
    }
    assert named == ran, (
        f"docs/architecture.md's stage table misses {sorted(ran - named)} and names "
        f"{sorted(named - ran)}"
    )
    for cls_name in {cls for cls, _ in named}:
        where = module_path(getattr(wf, cls_name).__module__)
        assert (ROOT / where).is_file()
        assert f"`{where}`" in ARCHITECTURE, f"docs/architecture.md: say {cls_name} is in {where}"


def test_architecture_names_only_paths_that_exist() -> None:
    paths = re.findall(r"`([\w.-]+(?:/[\w.-]*)+)`", ARCHITECTURE)
    assert "workflows/campaign.py" in paths
    for path in paths:
        assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"
    for link in re.findall(r"\]\(([^)#]+)\)", ARCHITECTURE):
        if not link.startswith("http"):
            assert (ROOT / "docs" / link).exists(), f"docs/architecture.md links to {link}"
