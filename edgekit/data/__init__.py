"""Data edgekit ships: the target profiles (``targets/*.yaml``), the model recipes and the demo
recipe's weights (``models/``), read as package data through edgekit.datapath, and the real images
recipes, calibration sets and accuracy figures come from (``bluemarble``)."""
