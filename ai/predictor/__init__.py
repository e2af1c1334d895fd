"""The vmaf-tune predictor v2: per-codec CRF-to-VMAF MLPs judged by source-grouped CV."""
