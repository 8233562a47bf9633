"""Deploying the workflow as snakemake-workflows are deployed (the workflow catalogue's
conventions): `snakedeploy deploy-workflow` from a local clone, and as a `module` of another
Snakefile. Dry runs only: the module resolves every rule and bundled file from the clone."""

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clone(tmp_path_factory, repo):
    """A clone of the committed workflow (what a user gets from GitHub)."""
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    path = tmp_path_factory.mktemp("clone") / "carmscope"
    subprocess.run(["git", "clone", "-q", str(repo), str(path)], check=True)
    # the compiled CAR kernels are built by `make setup`, not committed: reuse this checkout's
    for built in (repo / "src").rglob("_native*.so"):
        shutil.copy(built, path / built.relative_to(repo))
    return path


def tiny_config(workdir, clone):
    """The bundled config/ (as snakedeploy copies it) with the tiny cohort's config as the
    deployment's config.yaml; its tables name data under the deployment's resources/."""
    shutil.copytree(clone / "config", workdir / "config", dirs_exist_ok=True)
    shutil.copy(clone / "config/test/config.yaml", workdir / "config/config.yaml")


def dry_run(tool, workdir):
    return subprocess.run(
        [tool("snakemake"), "--dry-run", "--cores", "1", "--quiet", "rules"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_snakedeploy_deploys_from_a_local_clone(clone, repo, tool, tmp_path):
    snakedeploy = repo / ".venv-tools/bin/snakedeploy"
    if not snakedeploy.exists():
        pytest.skip("snakedeploy not installed: run `make tools` (.venv-tools/)")
    dest = tmp_path / "deployed"
    result = subprocess.run(
        [str(snakedeploy), "deploy-workflow", str(clone), str(dest), "--tag", "HEAD"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (dest / "config/config.yaml").exists() and (dest / "config/README.md").exists()
    snakefile = (dest / "workflow/Snakefile").read_text()
    assert "module carmscope:" in snakefile and "use rule * from carmscope" in snakefile
    # snakedeploy names a local source relative to itself; a GitHub source is
    # github("<owner>/carmscope", path="Snakefile", tag=...). Point it at the clone.
    snakefile = snakefile.replace('"Snakefile"', f'"{clone / "Snakefile"}"')
    (dest / "workflow/Snakefile").write_text(snakefile)
    tiny_config(dest, clone)
    result = dry_run(tool, dest)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert "expression_embedding" in result.stdout and "result_tables" in result.stdout


def test_workflow_runs_as_a_module_of_another_snakefile(clone, tool, tmp_path):
    (tmp_path / "config").mkdir()
    tiny_config(tmp_path, clone)
    (tmp_path / "Snakefile").write_text(
        'configfile: "config/config.yaml"\n\n\n'
        "module carmscope:\n"
        f'    snakefile:\n        "{clone / "Snakefile"}"\n'
        "    config:\n        config\n\n\n"
        "use rule * from carmscope as carmscope_*\n"
    )
    result = dry_run(tool, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert "carmscope_expression_embedding" in result.stdout
