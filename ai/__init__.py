"""Scripts of the video-quality pipeline, each recorded with provenance."""
