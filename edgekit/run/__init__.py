"""`edgekit run`: many scenes, one machine or a Ray cluster, resumable; class masks from a
segmenter, boxes from a detector.

jobs (inputs -> one job per scene, with its output paths), scene (one scene -> one result row, never
raises), ledger (manifest.jsonl, per-scene sidecars, attempts, summary), local and ray (backends that
call the same scene function), driver (skip, dispatch, count crashes, record).
"""
