"""Tiled object detection: decoders for deployed output layouts, cross-tile merging, outputs."""
