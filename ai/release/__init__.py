"""What ships: the model registry and the model card."""
