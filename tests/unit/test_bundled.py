"""Bundled resources found from a deployed workflow's working folder."""

from carmscope.bundled import resolve_bundled


def _config():
    return {
        "car": {
            "construct": "resources/car/c.fa",
            "segments": "mine.tsv",
            "host_transcripts": None,
        },
        "genesets": {"gmt": ["resources/g.gmt", "/abs/x.gmt"], "signatures": "resources/s.tsv"},
        "expression": {"markers": "resources/m.tsv"},
    }


def test_missing_relative_paths_point_at_the_workflow_copy(tmp_path):
    root, work = tmp_path / "workflow", tmp_path / "work"
    for name in ("resources/car/c.fa", "resources/g.gmt", "resources/s.tsv", "mine.tsv"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    work.mkdir()
    (work / "mine.tsv").write_text("user's own")  # the user's file wins
    config = _config()
    changed = resolve_bundled(config, root, work)
    assert config["car"]["construct"] == str(root / "resources/car/c.fa")
    assert config["car"]["segments"] == "mine.tsv"
    assert config["genesets"]["gmt"] == [str(root / "resources/g.gmt"), "/abs/x.gmt"]
    assert config["expression"]["markers"] == "resources/m.tsv"  # in neither: left for the error
    assert changed == ["car.construct", "genesets.gmt", "genesets.signatures"]


def test_a_run_from_the_checkout_changes_nothing(tmp_path):
    config = _config()
    assert resolve_bundled(config, tmp_path, tmp_path) == []
    assert config == _config()


def test_workflow_catalogue_metadata(repo):
    """The files the Snakemake workflow catalogue reads: its YAML, config/config.yaml and the
    config/README.md it shows, a Snakefile snakedeploy finds."""
    import yaml

    catalogue = yaml.safe_load((repo / ".snakemake-workflow-catalog.yml").read_text())
    usage = catalogue["usage"]
    assert usage["software-stack-deployment"]["conda"] is True
    assert usage["report"] is True
    assert "--cores" in usage["mandatory-flags"]["flags"]
    assert (repo / "config/config.yaml").exists() and (repo / "Snakefile").exists()
    assert "## `expression`" in (repo / "config/README.md").read_text()
