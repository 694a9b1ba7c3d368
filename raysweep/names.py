"""W&B-style identifiers: 8-character run and sweep ids, readable run names.

W&B gives every run and sweep an 8-character base-36 id (``wandb.util.generate_id``)
and every run a name like ``brisk-forest-7`` (adjective, noun, run number).
raysweep does the same so a run log reads like a W&B project.  Run ids are
also directory names in the run log, so anything that is not a plain id is
refused before it can reach a path (``../``, ``/``, dots).
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import string

from raysweep.errors import RunLogError

ID_CHARS = string.ascii_lowercase + string.digits
ID_LENGTH = 8
#: What a run or sweep id may look like: W&B's own ids, or a user's WANDB_RUN_ID-style id.
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

ADJECTIVES = tuple("""
amber bright brisk calm clean cosmic crimson dainty dashing deep devout dry eager earthy
easy efficient electric ethereal fanciful fine fiery fluent fragrant fresh gallant
gentle glad glorious golden graceful hardy helpful icy jolly laced lemon light lilac
lively lucky lunar misty noble northern olive peach polished proud quiet rare resilient
rich rose royal rural sage scarlet serene silver smooth snowy solar splendid stellar
still stoic sunny swift twilight vague vibrant vivid warm wandering wild winter wise
worldly
""".split())
NOUNS = tuple("""
aardvark bird blaze breeze brook butterfly cherry cloud dawn deluge dew disco donkey
dream dust eon feather field fire firebrand flower fog forest frog frost galaxy glade
glitter grass haze hill lake leaf lion meadow microwave moon morning mountain music
night oath ocean paper pine planet plant pond puddle rain resonance river salad sea
shadow shape sky smoke snow sound spaceship spark star sun sunset surf sweep terrain
thunder totem tree valley violet voice water wave wildflower wind wood
""".split())


def new_id() -> str:
    """A fresh random W&B-style id: 8 characters from ``[a-z0-9]``."""
    return "".join(secrets.choice(ID_CHARS) for _ in range(ID_LENGTH))


def new_sweep_id() -> str:
    """A fresh sweep id (W&B's sweep ids have the same shape as run ids)."""
    return new_id()


def run_id_for(sweep_id: str, trial_id: str) -> str:
    """The run id of Ray trial `trial_id` in sweep `sweep_id`.

    Derived, not drawn, so the driver's run log and the trial's worker (which
    may be on another node and must set ``WANDB_RUN_ID``) agree without talking,
    and a trial retried or restored after a driver restart keeps its run.
    """
    digest = int.from_bytes(hashlib.sha256(f"{sweep_id}/{trial_id}".encode()).digest(), "big")
    chars = []
    for _ in range(ID_LENGTH):
        digest, index = divmod(digest, len(ID_CHARS))
        chars.append(ID_CHARS[index])
    return "".join(chars)


def run_name(index: int, seed: int | str | None = None) -> str:
    """A W&B-style run name, ``adjective-noun-<index>``, e.g. ``brisk-forest-7``.

    The same `seed` and `index` always give the same name (raysweep seeds with
    the sweep id), so a resumed sweep names its runs as the first attempt did.
    """
    rng = random.Random(f"{seed}/{index}") if seed is not None else random.Random()
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}-{index}"


def check_id(value: str, what: str = "run id") -> str:
    """Return `value` if it is safe as a single path component, else raise `RunLogError`.

    Ids become directory names under ``runs/``; letting ``..`` or ``/`` through
    would let a run write outside the run log.
    """
    if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value):
        raise RunLogError(
            f"{what} {value!r} is not allowed: use 1-64 letters, digits, '_' or '-', "
            f"starting with a letter or digit (W&B ids look like {new_id()!r})")
    return value


def slug(name: str, default: str = "sweep") -> str:
    """`name` made safe as one directory-name component (for ``<sweep-name>-<id>``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip(".-")[:100].strip(".-")
    return cleaned or default
