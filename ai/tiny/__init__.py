"""The vmaf_tiny family: canonical-6 MLPs trained, exported, smoke-validated and LOSO-evaluated."""
