"""emgtf's KerasTuner search spaces, installed as the package ``emgtf.tuner`` (data only; see
emgtf.paths and emgtf.tuning.space)."""
