"""T cell receptor repertoires: new and expanded clones after infusion (docs/tcr.md).

Modules
-------
genes
    IMGT gene-name normalisation (Adaptive ``TCRBV06-05`` is IMGT ``TRBV6-5``; alleles dropped).
io
    Reads a repertoire of any supported format (Adaptive immunoSEQ v2 and v3+, AIRR rearrangement
    TSV, 10x ``filtered_contig_annotations.csv``), detected from the header, into one clone table
    of productive TRB clones (CDR3 amino-acid sequence + TRBV gene); reads back clone tables.
immunoseq, airr, tenx_vdj
    One reader per format family.
formats, columns, clones
    What the readers share: detection from the header and the :class:`~formats.Repertoire`;
    reading the needed columns (pyarrow) as distinct values + row codes; rows (or cells) to
    clones.
diversity
    Per-sample diversity: templates, clones, Shannon entropy, clonality, Simpson clonality,
    top-10 share, rarefied richness.
compare
    Baseline vs post-infusion differential abundance (one-sided Fisher exact tests, BH), new
    clones (Poisson detectability), Morisita-Horn overlap.
cells
    The ``vdj`` join: a clone's cells and their annotated types.
patients
    Per patient and tissue: which repertoires are compared, and the patient-level figures.

Nothing here knows about Snakemake; the workflow's ``tcr`` rules call these functions.
"""
