"""Reading the workflow's own files for tests and benchmarks."""

from carmscope.workflow_files import local_rules, localised_config, rule_blocks, rule_files


def test_localised_config_moves_cohort_paths_and_anchors_repository_paths(repo):
    config = {
        "synthetic": {"outdir": "resources/synthetic_cohort/tiny", "preset": "tiny"},
        "ctdna": {"reference": "resources/synthetic_cohort/tiny/reference/genome.fa"},
        "genesets": {"gmt": ["resources/genesets/hallmark_inflammation.v7.0.gmt"]},
        "tables": {"strata": ["her2_ihc"]},
    }
    local = localised_config(config, repo, "cohort")
    assert local["ctdna"]["reference"] == "cohort/reference/genome.fa"
    assert local["genesets"]["gmt"] == [str(repo / config["genesets"]["gmt"][0])]
    assert local["tables"] == {"strata": ["her2_ihc"]}


def test_local_rules_of_the_workflow(repo):
    local = local_rules(rule_files(repo))
    assert {"result_tables", "report_figures", "gather_input_inspection"} <= local
    assert "expression_scrna" not in local


def test_rule_blocks_name_rules_made_in_a_loop(tmp_path):
    path = tmp_path / "rules.smk"
    path.write_text(
        "rule plain:\n    threads: 2\n\n"
        "for shape in SHAPES:\n\n"
        "    rule:\n        name:\n            shape.name\n        threads: 1\n"
        "        localrule: True\n\n"
        "rule after:\n    threads: 3\n"
    )
    blocks = rule_blocks([path])
    assert set(blocks) == {"plain", "<shape.name>", "after"}
    assert "threads: 1" in blocks["<shape.name>"] and "after" not in blocks["<shape.name>"]
    assert local_rules([path]) == {"<shape.name>"}
