"""pydeseq2's fits run with one BLAS thread, whatever the caller's thread pools allow."""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

from carmscope.expression import de_model
from tests.unit.test_expression_de import simulated_pairs


def test_fits_run_with_one_blas_thread(monkeypatch):
    from pydeseq2.dds import DeseqDataSet

    seen: list[int] = []
    fit = DeseqDataSet.deseq2

    def spy(self, *args, **kwargs):
        seen.extend(pool["num_threads"] for pool in threadpool_info())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(DeseqDataSet, "deseq2", spy)
    counts, design, _ = simulated_pairs(n_pairs=3, n_genes=40)
    with threadpool_limits(limits=2):
        assert {pool["num_threads"] for pool in threadpool_info()} == {2}
        results = de_model.deseq2_paired(counts, design, shrink=False)
        assert {pool["num_threads"] for pool in threadpool_info()} == {2}
    assert len(results) == 40
    assert seen and set(seen) == {1}
