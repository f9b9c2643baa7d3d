"""No-retrain evaluation: MIF/LIF and deletion curves (curves), statistics (stats), the ROAR toy check (toy)."""
