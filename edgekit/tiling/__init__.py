"""Tiled inference on huge images: image I/O, band merging, and the pipeline (the tile geometry is
edgekit.images.geometry, which calibration on one large image shares).

Never imports torch: the run-time path stays light.
"""
