"""A synthetic CAR-M trial cohort with ground truth, in the pipeline's input formats."""
