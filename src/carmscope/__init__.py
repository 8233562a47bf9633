"""carmscope: correlative analysis of CAR-macrophage cell-therapy trials."""
