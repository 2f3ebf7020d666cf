"""Cutting a session into chunks of emissions, each read with context on both sides: the plan
that transcription and the approximate mode of ``emgtf.inference.chunked`` follow. Light
(no Keras), so the commands can import it before TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from emgtf.errors import EmgtfError

if TYPE_CHECKING:
    from emgtf.models.emission import EmissionRule

__all__ = ["Chunk", "plan_chunks"]


@dataclass(frozen=True)
class Chunk:
    """Samples ``[start, stop)`` of the session; keeps its emissions ``[keep_start, keep_stop)``,
    which are the session's emissions ``[first, first + keep_stop - keep_start)``."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int
    first: int


def plan_chunks(
    num_samples: int, rule: EmissionRule, *, chunk_emissions: int, context_emissions: int
) -> list[Chunk]:
    """Chunks that together give each of the session's emissions exactly once, in order.

    Chunk k owns the session's emissions ``[k P, (k + 1) P)`` (P = ``chunk_emissions``) and reads
    ``context_emissions`` more on each side. A session no longer than one chunk with its context
    is one chunk: the whole session, exactly as ``emgtf.evaluate`` runs it.
    """
    if chunk_emissions < 1 or context_emissions < 0:
        raise EmgtfError(f"chunks need chunk_emissions >= 1 and context_emissions >= 0, got "
                         f"{chunk_emissions} and {context_emissions}")
    total = rule.emissions(num_samples)
    if total <= chunk_emissions + context_emissions:
        return [Chunk(0, num_samples, 0, total, 0)]
    chunks = []
    for first in range(0, total, chunk_emissions):
        last = min(first + chunk_emissions, total)
        read_from = max(0, first - context_emissions)
        read_to = min(total, last + context_emissions)
        start = read_from * rule.stride
        # The last chunk runs to the end of the session, as the whole-session pass does.
        stop = num_samples if read_to == total else start + rule.samples_for(read_to - read_from)
        chunks.append(Chunk(start, stop, first - read_from, last - read_from, first))
    return chunks
