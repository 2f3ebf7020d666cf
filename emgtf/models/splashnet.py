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

import functools

from emgtf.models import tds_conv_ctc
from emgtf.models.family import Family


def _variant(name: str, description: str) -> Family:
    """A setting of the TDS family under its own name; its defaults (the SplashNet changes above
    and its sizes) are ``configs/model/<name>.yaml``."""
    return Family(name, description, functools.partial(tds_conv_ctc.build, name=name),
                  tds_conv_ctc.emission_rule)


SPLASHNET = _variant("splashnet", "SplashNet: split-and-share TDS, rolling norm, 6 bands")
SPLASHNET_MINI = _variant("splashnet_mini", "SplashNet-mini (1/4 of the baseline)")
