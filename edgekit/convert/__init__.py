"""The workstation stages: source -> reparameterize -> export -> simplify -> precision, chained by
:mod:`edgekit.convert.pipeline` into one artifact folder."""
