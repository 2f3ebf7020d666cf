"""The optimizer of a config (``optimizer`` group): Adam or AdamW with the config's settings."""

from __future__ import annotations

from emgtf.errors import EmgtfError


def make_optimizer(opt_cfg, learning_rate):
    import keras

    name = opt_cfg.get("name", "adam")
    kwargs = dict(
        learning_rate=learning_rate,
        beta_1=float(opt_cfg.get("beta_1", 0.9)),
        beta_2=float(opt_cfg.get("beta_2", 0.999)),
        epsilon=float(opt_cfg.get("epsilon", 1e-8)),
    )
    if opt_cfg.get("clipnorm") is not None:
        kwargs["clipnorm"] = float(opt_cfg.clipnorm)
    if name == "adam":
        if opt_cfg.get("weight_decay") is not None:
            kwargs["weight_decay"] = float(opt_cfg.weight_decay)
        return keras.optimizers.Adam(**kwargs)
    if name == "adamw":
        return keras.optimizers.AdamW(weight_decay=float(opt_cfg.get("weight_decay") or 0.0), **kwargs)
    raise EmgtfError(f"optimizer.name: unknown optimizer '{name}' (choose adam or adamw)")
