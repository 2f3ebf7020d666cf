"""``splashnet`` and ``splashnet_mini``: SplashNet (arXiv 2506.12356) as settings of the TDS family.

Its changes to the baseline, each also one hyperparameter of ``tds_conv_ctc`` for ablations:
``norm=rolling`` (RollingTimeNorm instead of SpectrogramNorm), ``spectrum=6band`` (the log bins
summed into 6 bands, so each band's MLP input is 16 x 6 = 96), ``share_hands=true`` (one front MLP
and one TDS stack for both hands, joined at the classifier), and aggressive channel masking (no
time masks, 2 frequency masks of up to 12 bins, drawn per electrode). ``split_hands`` is on, so
``share_hands=false`` keeps the hands apart with a MLP and TDS stack each (SplashNet's un-shared
fine-tuning: ``fit checkpoint=splashnet.keras model.share_hands=false`` starts both hands from the
shared weights). SplashNet: mlp [528],
blocks [24, 24, 48, 48]; SplashNet-mini: mlp [384], blocks [24, 24, 24, 24]; about 1/2 and 1/4 of
the baseline's parameters.
"""

from __future__ import annotations

from types import SimpleNamespace

from emgtf.models import tds

_SPLASHNET = {
    "spectrum": "6band",
    "norm": "rolling",
    "share_hands": True,
    "split_hands": True,
    "n_time_masks": 0,
    "n_freq_masks": 2,
    "freq_mask_param": 12,
}


def _variant(name: str, description: str, sizes: dict) -> SimpleNamespace:
    defaults = {**tds.DEFAULTS, **_SPLASHNET, **sizes}
    return SimpleNamespace(
        NAME=name,
        DESCRIPTION=description,
        DEFAULTS=defaults,
        build=lambda hp: tds.build(hp, name=name),
        emission_rule=tds.emission_rule,
    )


SPLASHNET = _variant("splashnet", "SplashNet: split-and-share TDS, rolling norm, 6 bands",
                     {"mlp_features": [528], "block_channels": [24, 24, 48, 48]})
SPLASHNET_MINI = _variant("splashnet_mini", "SplashNet-mini (1/4 of the baseline)",
                          {"mlp_features": [384], "block_channels": [24, 24, 24, 24]})
