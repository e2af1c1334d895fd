"""The legacy LOSO evaluations: per-fold tiny VMAF models scored on their held-out Netflix clips."""
