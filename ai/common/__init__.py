"""What every ai/ script shares: its command line's conventions and the pipeline's file formats."""
