"""The code base passes its linters: ruff, snakefmt and snakemake --lint."""

import subprocess


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ruff_check(repo, tool):
    result = run([tool("ruff"), "check", "."], repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format(repo, tool):
    result = run([tool("ruff"), "format", "--check", "."], repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt(repo, tool):
    result = run([tool("snakefmt"), "--check", "Snakefile", "workflow/rules"], repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_reports_nothing(repo, tool):
    result = run(
        [tool("snakemake"), "--lint", "--cores", "1", "--configfile", "config/test/config.yaml"],
        repo,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr, result.stdout + result.stderr
