"""Encoder tuning: Phase F CRF recipes and the NR threshold calibration."""
