"""postprocessing package."""
