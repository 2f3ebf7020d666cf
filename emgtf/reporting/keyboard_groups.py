"""The 98 keys of the charset in touch-typing order, grouped by the hand and finger that type them.

A decoder that confuses two keys of one finger is failing differently from one that confuses the
two hands, so the confusion matrix is laid out finger by finger, left hand to right hand. The map
is the synthetic typist's (``emgtf.synth.keyboard``): a capital is its letter's key, a shifted
symbol its US-keyboard key (``?`` is ``/``). Space is the thumb's; backspace and enter are the
right pinky's; shift, pressed by either pinky, is a group of its own.
"""

from __future__ import annotations

import functools

from emgtf.charset import BACKSPACE, ENTER, SHIFT, SPACE, charset

HANDS = ("L", "R")
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
THUMB_GROUP = "thumb"
SHIFT_GROUP = "shift"
# Short names of the keys whose glyphs most fonts lack or that are invisible (space).
DISPLAY = {BACKSPACE: "bksp", ENTER: "enter", SPACE: "space", SHIFT: "shift"}


def display(char: str) -> str:
    """A printable name of a key: the character, or ``bksp`` / ``enter`` / ``space`` / ``shift``."""
    return DISPLAY.get(char, char)


@functools.cache
def key_groups() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``((group name, keys), ...)``: every key of the charset exactly once.

    Groups run left pinky, ring, middle, index, thumb, right index, middle, ring, pinky, shift;
    inside a group keys go by row (number row first), then column, each unshifted key before its
    shifted one (``a`` then ``A``).
    """
    # The synthetic generator pulls in scipy; only an error analysis needs this map, not every report.
    from emgtf.synth import keyboard as kb

    index = kb.key_index()
    layout = kb.layout()
    special = {BACKSPACE: kb.BACKSPACE, ENTER: kb.ENTER, SPACE: kb.SPACE}
    placed: dict[str, list[tuple[tuple, str]]] = {}
    for char in charset().chars:
        if char == SHIFT:
            placed.setdefault(SHIFT_GROUP, []).append(((0,), char))
            continue
        name, shifted = (special[char], False) if char in special else kb.key_of_char(char)
        key = layout[index[name]]
        group = THUMB_GROUP if key.finger == kb.THUMB else f"{HANDS[key.hand]} {FINGERS[key.finger]}"
        # layout() lists each row's keys left to right, so its index orders the columns.
        placed.setdefault(group, []).append(((key.row, index[name], shifted), char))
    order = [f"L {f}" for f in reversed(FINGERS[1:])] + [THUMB_GROUP]
    order += [f"R {f}" for f in FINGERS[1:]] + [SHIFT_GROUP]
    return tuple((g, tuple(c for _, c in sorted(placed[g]))) for g in order if g in placed)


@functools.cache
def key_order() -> tuple[str, ...]:
    """All 98 keys in the order of ``key_groups``."""
    return tuple(c for _, keys in key_groups() for c in keys)
