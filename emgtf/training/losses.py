"""The CTC loss and target packing, which live in ``emgtf.models.ctc`` (below inference, which
packs validation targets too). These names stay importable from here for scripts written against
them."""

from emgtf.models.ctc import PAD, CTCLoss, ctc_feasible, pack_targets, pack_targets_tensor

__all__ = ["PAD", "CTCLoss", "ctc_feasible", "pack_targets", "pack_targets_tensor"]
