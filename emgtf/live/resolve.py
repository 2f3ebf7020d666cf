"""Finding the stream a user names (``name=``, ``type=``, ``source_id=``) on the lab network.

No stream that matches: one line after the resolve timeout, listing the streams that were seen.
Two or more that match (two wristbands or bridges with one name): one line listing them by source
id, to pick one with ``source_id=``.
"""

from __future__ import annotations

from emgtf.errors import EmgtfError
from emgtf.live.lsl import describe, pylsl

# After the first match, how long to listen for more. A second targeted resolve misses a second
# outlet about half the time on one machine (liblsl 1.18, loopback config: seen in testing);
# listing every stream for this long finds both every time.
DUPLICATE_WAIT = 0.6


def _literal(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise EmgtfError(f"a stream property with both quote characters cannot be matched: {value!r}")


def predicate(*, name: str | None = None, type: str | None = None, source_id: str | None = None) -> str:
    """The XPath 1.0 predicate liblsl matches stream infos against."""
    parts = [f"{key}={_literal(value)}" for key, value in (("name", name), ("type", type), ("source_id", source_id))
             if value is not None]
    if not parts:
        raise EmgtfError("name a stream to decode: name=NAME, type=TYPE or source_id=ID")
    return " and ".join(parts)


def wanted(*, name=None, type=None, source_id=None) -> str:
    """The stream the user asked for, in words."""
    return ", ".join(f"{key}={value}" for key, value in (("name", name), ("type", type), ("source_id", source_id))
                     if value is not None)


def _resolve(query: str, timeout: float, *, skip_uid: str | None = None) -> list:
    """Streams matching ``query`` within ``timeout`` seconds, through a ContinuousResolver polled
    every 50 ms: liblsl 1.18's one-shot ``resolve_bypred`` that finds nothing sometimes returns
    5 s after its timeout (seen in testing, every config), which would stall the wait for a lost
    outlet. ``skip_uid``: a stream the resolver may still remember after its outlet died."""
    import time

    lsl = pylsl()
    resolver = lsl.ContinuousResolver(pred=query, forget_after=2.0)
    deadline = time.monotonic() + timeout
    while True:
        found = [info for info in resolver.results() if info.uid() != skip_uid]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def find_stream(*, name: str | None = None, type: str | None = None, source_id: str | None = None,
                timeout: float = 5.0):
    """The one StreamInfo that matches; raises EmgtfError (one line) when none or several do."""
    lsl = pylsl()
    query = predicate(name=name, type=type, source_id=source_id)
    found = _resolve(query, timeout)
    if not found:
        seen = lsl.resolve_streams(wait_time=min(1.0, timeout))
        listing = "; ".join(describe(info) for info in seen) or "none"
        raise EmgtfError(f"no LSL stream with {wanted(name=name, type=type, source_id=source_id)} "
                         f"within {timeout:g} s; streams seen: {listing}")
    unique = {info.uid(): info for info in found}
    for info in lsl.resolve_streams(wait_time=DUPLICATE_WAIT):
        if all(value is None or getter() == value for getter, value in
               ((info.name, name), (info.type, type), (info.source_id, source_id))):
            unique.setdefault(info.uid(), info)
    if len(unique) > 1:
        listing = "; ".join(describe(info) for info in unique.values())
        raise EmgtfError(f"{len(unique)} LSL streams match {wanted(name=name, type=type, source_id=source_id)}: "
                         f"{listing}; pick one with source_id=ID")
    return next(iter(unique.values()))


def find_again(info, timeout: float):
    """The stream ``info`` described, back after its outlet went away (matched by name, type and
    source id; the uid changes when an outlet restarts), or None within ``timeout`` seconds."""
    query = predicate(name=info.name(), type=info.type() or None, source_id=info.source_id() or None)
    found = _resolve(query, timeout, skip_uid=info.uid())
    return found[0] if found else None
