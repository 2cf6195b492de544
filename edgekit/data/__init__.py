"""Real images edgekit ships recipes, calibration sets and accuracy figures for."""
