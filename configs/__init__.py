"""emgtf's Hydra configs, installed as the package ``emgtf.configs`` (data only; see emgtf.paths)."""
