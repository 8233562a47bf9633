"""Snakemake adapter: the construct-specific k-mer index (carmscope.car.kmers)."""

import sys

from carmscope.car.kmers import build_index
from carmscope.construct import read_constructs
from carmscope.reproducible import write_tsv

sys.stderr = open(snakemake.log[0], "w")

constructs = read_constructs(snakemake.input.construct, snakemake.input.segments)
host_fasta = snakemake.input.get("host_transcripts") or None
index = build_index(constructs, snakemake.params.k, host_fasta)
write_tsv(index.to_table(), snakemake.output[0], index=False)
for number, construct in enumerate(constructs):
    print(f"{construct.name}: {index.count(number)} specific {index.k}-mers", file=sys.stderr)
print(f"{index.removed_host} k-mers dropped as host sequence", file=sys.stderr)
