"""The GitHub Actions workflows: valid by the workflows' schema, and doing their job.

check-jsonschema (requirements.txt) validates each file against its bundled copy of the
schema GitHub workflows follow (`--builtin-schema vendor.github-workflows`), offline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
CHECK = Path(sys.executable).parent / "check-jsonschema"


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHECK), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _load(path: Path) -> dict:
    workflow = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def _steps(workflow: dict) -> list[tuple[str, dict]]:
    return [
        (name, step)
        for name, job in workflow["jobs"].items()
        for step in job.get("steps", [])
    ]


def test_there_is_a_ci_workflow():
    assert REPO / ".github" / "workflows" / "ci.yml" in WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_is_valid(path):
    result = _lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linter_rejects_a_broken_workflow(tmp_path):
    """The check can fail: a job without `runs-on` and a step with two actions."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  test:\n    steps:\n"
        "      - uses: actions/checkout@v4\n        run: .ci/run\n"
    )
    result = _lint(broken)
    assert result.returncode != 0
    assert "broken.yml" in result.stdout + result.stderr


def test_ci_runs_the_test_script_on_every_push():
    workflow = _load(REPO / ".github" / "workflows" / "ci.yml")
    on = workflow["on"]
    assert "push" in on and not (on["push"] or {}).get("branches"), on
    runs = [step.get("run", "") for _, step in _steps(workflow)]
    assert ".ci/run" in runs
    assert (REPO / ".ci" / "run").stat().st_mode & 0o111, ".ci/run is not executable"


def test_pages_deploys_the_built_book_from_main_only():
    workflow = _load(REPO / ".github" / "workflows" / "ci.yml")
    steps = _steps(workflow)
    upload = [
        (job, s)
        for job, s in steps
        if s.get("uses", "").startswith("actions/upload-pages-artifact@")
    ]
    deploy = [
        (job, s)
        for job, s in steps
        if s.get("uses", "").startswith("actions/deploy-pages@")
    ]
    assert len(upload) == 1 and len(deploy) == 1
    (test_job, up), (deploy_job, _) = upload[0], deploy[0]
    # The artifact is the book that the test run just built and checked.
    assert up["with"]["path"] == "_build/html"
    assert ".ci/run" in [s.get("run") for j, s in steps if j == test_job]
    main_only = "github.ref == 'refs/heads/main'"
    assert main_only in up["if"]
    job = workflow["jobs"][deploy_job]
    assert main_only in job["if"]
    assert test_job in (
        [job["needs"]] if isinstance(job["needs"], str) else job["needs"]
    )
    assert job["permissions"] == {"pages": "write", "id-token": "write"}
    assert job["environment"]["name"] == "github-pages"
