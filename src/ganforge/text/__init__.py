"""Captioned data and text encoders (issue 20): captions in three layouts (``captions``), the
``TextEncoder`` base and registry (``encoder``), the offline ``builtin`` encoder trained on the
dataset's own captions (``builtin``), CLIP's text tower (``clip``) and the captioned-digits demo
data (``digits``). Importing the package registers every encoder (each module registers itself)."""

from __future__ import annotations

from . import builtin, clip, encoder  # noqa: F401 (registration)
from .captions import caption_report, load_captions, read_captions  # noqa: F401
from .encoder import TEXT_ENCODERS, TextEncoder, build_text_encoder, load_text_encoder  # noqa: F401
