"""The physical QWERTY keyboard and the touch-typing finger map.

A synthetic key press is a burst of the muscles that move one finger, so what the generator needs
to know about a key is which hand and finger press it, from which row, and whether the finger has
to reach sideways. Characters map onto physical keys (``"H"`` is the ``h`` key with shift held,
``"?"`` is the ``/`` key with shift held), as on a US keyboard.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

LEFT, RIGHT = 0, 1
THUMB, INDEX, MIDDLE, RING, PINKY = 0, 1, 2, 3, 4
# Rows, top to bottom; the thumb row holds space (and the modifier keys a thumb can reach).
NUMBER, TOP, HOME, BOTTOM, THUMB_ROW = 0, 1, 2, 3, 4

_ROWS = {
    NUMBER: "`1234567890-=",
    TOP: "qwertyuiop[]\\",
    HOME: "asdfghjkl;'",
    BOTTOM: "zxcvbnm,./",
}
# Touch-typing columns: the finger of column 0..9 of the letter rows. The number row sits half a
# key to the left, so its column c is typed by the finger of letter column c - 1.
_COLUMN_FINGER = (
    (LEFT, PINKY), (LEFT, RING), (LEFT, MIDDLE), (LEFT, INDEX), (LEFT, INDEX),
    (RIGHT, INDEX), (RIGHT, INDEX), (RIGHT, MIDDLE), (RIGHT, RING), (RIGHT, PINKY),
)
# The shifted character of each US-keyboard key.
SHIFTED = {
    "~": "`", "!": "1", "@": "2", "#": "3", "$": "4", "%": "5", "^": "6", "&": "7", "*": "8",
    "(": "9", ")": "0", "_": "-", "+": "=", "{": "[", "}": "]", "|": "\\", ":": ";", '"': "'",
    "<": ",", ">": ".", "?": "/",
}
# pynput names of the non-character keys the synthetic typist presses. Only space, enter,
# backspace and shift are in the charset; the rest are there because real keyloggers record them
# too and the decoder must learn to ignore their bursts.
SPACE, ENTER, BACKSPACE = "Key.space", "Key.enter", "Key.backspace"
SHIFT, SHIFT_R = "Key.shift", "Key.shift_r"
STRAY_KEYS = ("Key.tab", "Key.ctrl", "Key.cmd")


@dataclass(frozen=True)
class PhysicalKey:
    """A key on the keyboard: its name, the hand and finger that press it, its row, and how far
    the finger reaches sideways out of its home column (``reach``: -1 one column towards the
    thumb, 1, 2, 3 columns away from it, 0 none)."""

    name: str
    hand: int
    finger: int
    row: int
    reach: int = 0


@functools.cache
def layout(space_hand: int = RIGHT) -> tuple[PhysicalKey, ...]:
    """All physical keys; space is pressed by the thumb of ``space_hand``."""
    keys = []
    for row, chars in _ROWS.items():
        for col, ch in enumerate(chars):
            c = col - 1 if row == NUMBER else col
            hand, finger = _COLUMN_FINGER[min(max(c, 0), 9)]
            # Index fingers own two columns (the inner one is a sideways reach); pinkies reach
            # outwards, the further the more, for everything beyond their home column.
            reach = -1 if c in (4, 5) else (c - 9 if c >= 10 else (1 if c < 0 else 0))
            keys.append(PhysicalKey(ch, hand, finger, row, reach))
    keys += [
        PhysicalKey(SPACE, space_hand, THUMB, THUMB_ROW),
        PhysicalKey(ENTER, RIGHT, PINKY, HOME, 2),
        PhysicalKey(BACKSPACE, RIGHT, PINKY, NUMBER, 3),
        PhysicalKey("shift_l", LEFT, PINKY, BOTTOM, 1),
        PhysicalKey("shift_r", RIGHT, PINKY, BOTTOM, 2),
        PhysicalKey("Key.tab", LEFT, PINKY, TOP, 1),
        PhysicalKey("Key.ctrl", LEFT, PINKY, THUMB_ROW, 1),
        PhysicalKey("Key.cmd", LEFT, THUMB, THUMB_ROW),
    ]
    return tuple(keys)


@functools.cache
def key_index(space_hand: int = RIGHT) -> dict[str, int]:
    """Index into ``layout`` of every physical key name."""
    return {k.name: i for i, k in enumerate(layout(space_hand))}


def key_of_char(ch: str) -> tuple[str, bool]:
    """The physical key typing character ``ch`` and whether shift must be held."""
    if ch == " ":
        return SPACE, False
    if ch.isupper():
        return ch.lower(), True
    if ch in SHIFTED:
        return SHIFTED[ch], True
    return ch, False


def neighbours(name: str) -> str:
    """The keys left and right of a letter key in its row (where typos land)."""
    for chars in _ROWS.values():
        col = chars.find(name)
        if col >= 0:
            return "".join(c for c in chars[max(col - 1, 0): col + 2] if c != name and c.isalpha())
    return ""


# Logged names of keys the synthetic keyboard models by a neighbour (the burst of the finger that
# would press them); any other name falls back to FALLBACK_KEY.
_ALIASES = {
    "Key.shift": "shift_l", "Key.shift_l": "shift_l", "Key.shift_r": "shift_r",
    "Key.ctrl_l": "Key.ctrl", "Key.ctrl_r": "Key.ctrl", "Key.cmd_l": "Key.cmd", "Key.cmd_r": "Key.cmd",
    "Key.alt": "Key.cmd", "Key.alt_l": "Key.cmd", "Key.alt_r": "Key.cmd", "Key.caps_lock": "Key.tab",
    "Key.esc": "`", "Key.delete": BACKSPACE, "Key.left": ENTER, "Key.right": ENTER, "Key.up": ENTER,
    "Key.down": ENTER,
}
FALLBACK_KEY = "Key.cmd"


def physical_key(logged: str) -> str:
    """The physical key (a ``layout`` name) whose finger presses a key logged as ``logged``
    (a character or a pynput name), for replaying a real keystroke timeline."""
    names = key_index()
    if logged in names:
        return logged
    if logged in _ALIASES:
        return _ALIASES[logged]
    if len(logged) == 1:
        key, _ = key_of_char(logged)
        if key in names:
            return key
    return FALLBACK_KEY
