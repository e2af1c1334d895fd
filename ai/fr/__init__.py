"""Full-reference regressors: the v2 ensemble judged leave-one-source-out and its seed gate."""
