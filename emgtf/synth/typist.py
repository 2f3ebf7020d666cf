"""A simulated typist: turns prompts into timed keystrokes as the real keylogger records them.

Why: the decoder learns from the timing as much as from the muscles. Real typists have their own
speed (mean inter-key interval ~150-250 ms), are slower when one finger must type two keys in a row
and faster when the hands alternate, hold shift before a capital and release it after, hit a
neighbouring key now and then and correct it with backspace, hesitate between words, and end each
prompt with enter. At those speeds the muscle bursts of neighbouring keys overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emgtf import SAMPLE_RATE
from emgtf.synth import keyboard as kb
from emgtf.synth import text as prompt_text
from emgtf.synth.knobs import SynthConfig

MIN_IKI_S = 0.04  # the fastest real rollover between two keys


def _stamp(t: float, start: float) -> float:
    """A keylogger time stamp on the sample grid of a recording starting at ``start``: the time of
    the nearest sample, computed as the sample times are (``start + i / SAMPLE_RATE``). The BIDS
    release stores a press as the index of its sample, so a synthetic session labels every window
    alike in both forms."""
    return start + round((float(t) - start) * SAMPLE_RATE) / SAMPLE_RATE


@dataclass(frozen=True)
class Typing:
    """A session's typing: ``keystrokes`` and ``prompts`` exactly as stored in a session file,
    plus, per keystroke, the physical key index ``keys`` (into ``keyboard.layout``) and the
    ``press``/``release`` times (float64 unix seconds)."""

    keystrokes: list[dict]
    prompts: list[dict]
    keys: np.ndarray
    press: np.ndarray
    release: np.ndarray


@dataclass(frozen=True)
class Typist:
    """One user's typing habits: mean inter-key interval and hold time (s), typo rate, the per
    key-pair speed factors ``digraph`` (num_keys, num_keys), and which thumb presses space."""

    iki_s: float
    hold_s: float
    typo_rate: float
    digraph: np.ndarray
    space_hand: int

    @classmethod
    def sample(cls, rng: np.random.Generator, cfg: SynthConfig, space_hand: int) -> "Typist":
        keys = kb.layout(space_hand)
        hand = np.array([k.hand for k in keys])
        finger = np.array([k.hand * 5 + k.finger for k in keys])
        # Same finger, different key: the finger must travel (slow). Hands alternating: the next
        # finger is ready while this one presses (fast). Repeating a key: a short bounce.
        factor = np.where(hand[:, None] == hand[None, :], 1.0, 0.82)
        factor = np.where(finger[:, None] == finger[None, :], 1.4, factor)
        np.fill_diagonal(factor, 1.1)
        factor = factor * np.exp(rng.normal(0.0, cfg.digraph_jitter, factor.shape))
        return cls(
            iki_s=float(rng.uniform(*cfg.iki_ms)) / 1000.0,
            hold_s=float(rng.uniform(*cfg.hold_ms)) / 1000.0,
            typo_rate=float(rng.uniform(*cfg.typo_rate)),
            digraph=factor,
            space_hand=space_hand,
        )

    def _actions(self, text: str, rng: np.random.Generator, cfg: SynthConfig) -> list[tuple[str, float]]:
        """What the typist does for a prompt: (character or key name, pause factor) in order."""
        actions = []
        i = 0
        while i < len(text):
            c = text[i]
            near = kb.neighbours(c.lower()) if c.isalpha() else ""
            if near and rng.random() < self.typo_rate:
                wrong = str(rng.choice(list(near)))
                actions.append((wrong.upper() if c.isupper() else wrong, 1.0))
                # Typos are noticed at once or after a character or two, then erased.
                more = min(int(rng.choice([0, 0, 1, 1, 2])), len(text) - i - 1)
                actions += [(ch, 1.0) for ch in text[i + 1: i + 1 + more]]
                actions.append((kb.BACKSPACE, float(rng.uniform(2.0, 4.0))))
                actions += [(kb.BACKSPACE, 0.8)] * more
                actions.append((c, 1.2))
            else:
                # Hesitations happen between words.
                pause = (float(rng.uniform(*cfg.hesitation_factor))
                         if c == " " and rng.random() < cfg.hesitation_rate else 1.0)
                actions.append((c, pause))
            i += 1
        actions.append((kb.ENTER, 1.5))
        return actions

    def type_prompt(self, text: str, shown: float, rng: np.random.Generator, cfg: SynthConfig):
        """Keystrokes (logged name, key index, press, release) typing ``text`` shown at ``shown``."""
        index = kb.key_index(self.space_hand)
        keys = kb.layout(self.space_hand)
        out = []
        held = {}  # shift key -> its entry in out, to extend a shift still held
        t = shown + float(rng.lognormal(np.log(cfg.reading_s), cfg.reading_jitter))  # reading the prompt
        t -= self.iki_s  # so that the first press lands at the reading time
        prev = None
        for ch, pause in self._actions(text, rng, cfg):
            if ch in (kb.BACKSPACE, kb.ENTER):
                name, (key, shifted) = ch, (ch, False)
            else:
                key, shifted = kb.key_of_char(ch)
                name = kb.SPACE if ch == " " else ch
            k = index[key]
            dt = self.iki_s * pause * float(rng.lognormal(0.0, cfg.iki_jitter))
            if prev is not None:
                dt *= self.digraph[prev, k]
            dt = max(dt, MIN_IKI_S)
            if shifted:
                dt += float(rng.uniform(0.05, 0.12))  # reaching for shift first
            press = t + dt
            release = press + self.hold_s * float(rng.lognormal(0.0, cfg.hold_jitter))
            if shifted:
                # Shift is pressed with the pinky of the other hand, before the key and released
                # after it.
                phys = "shift_r" if keys[k].hand == kb.LEFT else "shift_l"
                logged = kb.SHIFT_R if phys == "shift_r" and rng.random() < cfg.shift_r_rate else kb.SHIFT
                s_press = max(press - float(rng.uniform(0.05, 0.11)), t + 0.015)
                s_release = release + float(rng.uniform(0.015, 0.06))
                last = held.get(phys)
                if last is not None and out[last][3] > s_press:
                    # Still held from the previous shifted character: keep holding it.
                    out[last] = (*out[last][:3], s_release)
                else:
                    held[phys] = len(out)
                    out.append((logged, index[phys], s_press, s_release))
            out.append((name, k, press, release))
            t, prev = press, k
            if rng.random() < cfg.stray_key_rate:
                stray = str(rng.choice(kb.STRAY_KEYS))
                t += float(rng.uniform(0.1, 0.3))
                out.append((stray, index[stray], t, t + self.hold_s))
        return out

    def type_session(
        self, rng: np.random.Generator, cfg: SynthConfig, start: float, duration_s: float
    ) -> Typing:
        """Prompts typed one after another from ``start`` until the next would not fit."""
        end_limit = start + duration_s - 0.25
        strokes, prompts = [], []
        shown = start + float(rng.uniform(0.3, 1.0))
        tries = 0
        while True:
            text = prompt_text.prompt(rng) if tries == 0 else prompt_text.word_list(rng, most=1)
            typed = self.type_prompt(text, shown, rng, cfg)
            end = max(s[3] for s in typed) + float(rng.uniform(0.05, 0.2))
            if end > end_limit:
                # The last prompt would not fit: try a single word once, then stop.
                if tries:
                    break
                tries = 1
                continue
            tries = 0
            strokes += typed
            prompts.append({"name": "text_prompt", "start": _stamp(shown, start), "end": _stamp(end, start),
                            "payload": {"text": text}})
            shown = end + float(rng.uniform(*cfg.prompt_gap_s))
        strokes = [(name, k, _stamp(p, start), max(_stamp(r, start), _stamp(p, start) + 1 / SAMPLE_RATE))
                   for name, k, p, r in strokes]
        strokes.sort(key=lambda s: s[2])
        keystrokes = [{"key": s[0], "start": s[2], "end": s[3]} for s in strokes]
        return Typing(
            keystrokes=keystrokes,
            prompts=prompts,
            keys=np.array([s[1] for s in strokes], dtype=np.int64),
            press=np.array([s[2] for s in strokes], dtype=np.float64),
            release=np.array([s[3] for s in strokes], dtype=np.float64),
        )


def typing_of(keystrokes: list[dict], prompts: list[dict], start: float, space_hand: int) -> Typing:
    """The ``Typing`` of a recorded keystroke timeline (times in seconds from the recording's
    first sample, as a BIDS ``events.tsv`` has them), in a recording that starts at unix time
    ``start``; each key is pressed by the finger of ``keyboard.physical_key``."""
    index = kb.key_index(space_hand)
    strokes = sorted(keystrokes, key=lambda k: k["start"])
    press = np.array([start + k["start"] for k in strokes], dtype=np.float64)
    release = np.array([start + k["end"] for k in strokes], dtype=np.float64)
    moved = [{"key": k["key"], "start": float(p), "end": float(r)} for k, p, r in zip(strokes, press, release)]
    moved_prompts = [{**p, "start": start + p["start"], "end": start + p["end"]} for p in prompts]
    keys = np.array([index[kb.physical_key(k["key"])] for k in strokes], dtype=np.int64)
    return Typing(keystrokes=moved, prompts=moved_prompts, keys=keys, press=press, release=release)
