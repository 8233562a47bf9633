"""Snakemake adapter: the construct-specific k-mer index (carmscope.car.kmers)."""

import sys

from carmscope.car.kmers import build_index
from carmscope.construct import read_constructs

sys.stderr = open(snakemake.log[0], "w")

constructs = read_constructs(snakemake.input.construct, snakemake.input.segments)
host_fasta = snakemake.input.get("host_transcripts") or None
index = build_index(constructs, snakemake.params.k, host_fasta)
index.to_table().to_csv(snakemake.output[0], sep="\t", index=False)
for number, construct in enumerate(constructs):
    print(f"{construct.name}: {index.count(number)} specific {index.k}-mers", file=sys.stderr)
print(f"{index.removed_host} k-mers dropped as host sequence", file=sys.stderr)
