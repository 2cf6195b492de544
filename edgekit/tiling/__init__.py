"""Tiled inference on huge images: pure geometry, image I/O, band merging, and the pipeline.

Never imports torch: the run-time path stays light.
"""
