"""roar-plan: an experiment's bill (counts, bytes, device-hours) before anything is launched."""
