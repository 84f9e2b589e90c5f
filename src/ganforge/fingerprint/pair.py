"""A fingerprint: the code (a bit string), the encoder that writes it into images and the decoder
that reads it back; kept as one safetensors file with the code and shapes in its metadata."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError, GanforgeError
from ..watermark import binomial_tail
from .nets import DEFAULT_STRENGTH, FingerprintDecoder, FingerprintEncoder

FILE = "fingerprint.safetensors"
MIN_BITS, MAX_BITS = 16, 256
THRESHOLD = 1e-4  # detected when the binomial p-value of the bits read is below this


def parse_code(text: str) -> list[int]:
    """``--fingerprint BITS``: a string of 0s and 1s, or hexadecimal with a 0x prefix (4 bits per digit)."""
    s = str(text).strip().replace("_", "")
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", s):
        bits = [int(b) for digit in s[2:] for b in f"{int(digit, 16):04b}"]
    elif re.fullmatch(r"[01]+", s):
        bits = [int(b) for b in s]
    else:
        raise GanforgeError(f"--fingerprint must be bits (e.g. 1011...) or hex (0x...), got {text!r}")
    if not MIN_BITS <= len(bits) <= MAX_BITS:
        raise GanforgeError(f"--fingerprint must have {MIN_BITS} to {MAX_BITS} bits, got {len(bits)}")
    return bits


binomial_p_value = binomial_tail  # P(at least ``right`` of ``total`` bits right by chance): the watermark's test


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] rounded to the 256 levels a saved 8-bit image holds."""
    return ((x + 1) * 127.5).round() / 127.5 - 1


@dataclass
class Fingerprint:
    code: torch.Tensor  # (bits,) in {0, 1}
    encoder: FingerprintEncoder
    decoder: FingerprintDecoder

    @property
    def bits(self) -> int:
        return int(self.code.numel())

    @property
    def code_text(self) -> str:
        return "".join(str(int(b)) for b in self.code.tolist())

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in [-1, 1] fingerprinted and quantised to 8 bits (as a saved image would be)."""
        enc = self.encoder
        dev = next(enc.parameters()).device
        out = enc(x.to(dev, torch.float32), self.code.to(dev).expand(x.shape[0], -1))
        return to_8bit(out).to(x.device, x.dtype)

    @torch.no_grad()
    def read(self, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """The bits read from images ``x`` in [-1, 1] (N, C, H, W; any size: resized to the pair's), (N, bits)."""
        dec = self.decoder
        dev = next(dec.parameters()).device
        if x.shape[1] != self.encoder.channels:  # RGB <-> grey, as the run's data loader converts
            x = x.mean(1, keepdim=True) if self.encoder.channels == 1 else x.expand(-1, 3, -1, -1)
        return torch.cat([(dec(x[i:i + batch].to(dev, torch.float32)) > 0).long().cpu()
                          for i in range(0, len(x), batch)])

    def detect(self, x: torch.Tensor) -> list[dict]:
        """One ``{"detected", "bit_accuracy", "p_value"}`` per image."""
        right = (self.read(x) == self.code.long()).sum(1).tolist()
        out = []
        for r in right:
            p = binomial_p_value(int(r), self.bits)
            out.append({"detected": p < THRESHOLD, "bit_accuracy": round(r / self.bits, 4), "p_value": p})
        return out

    def bit_accuracy(self, x: torch.Tensor) -> float:
        """Mean share of the code's bits read right over images ``x``."""
        return float((self.read(x) == self.code.long()).float().mean())

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {f"encoder.{k}": v.detach().cpu().contiguous() for k, v in self.encoder.state_dict().items()}
        tensors.update({f"decoder.{k}": v.detach().cpu().contiguous() for k, v in self.decoder.state_dict().items()})
        meta = {"code": self.code_text, "channels": self.encoder.channels, "resolution": self.encoder.resolution,
                "strength": self.encoder.strength}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"ganforge_fingerprint": json.dumps(meta)})
        tmp.replace(path)
        return path


def build(code: list[int], channels: int, resolution: int, strength: float = DEFAULT_STRENGTH) -> Fingerprint:
    bits = len(code)
    return Fingerprint(torch.tensor(code, dtype=torch.long), FingerprintEncoder(bits, channels, resolution, strength=strength),
                       FingerprintDecoder(bits, channels, resolution))


def load(path: str | Path) -> Fingerprint:
    """A fingerprint saved by :meth:`Fingerprint.save` (a run directory: its ``fingerprint.safetensors``)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / FILE
    if not path.is_file():
        raise GanforgeError(f"no fingerprint at {path} (train with --fingerprint BITS to make one)")
    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {})["ganforge_fingerprint"])
        state = load_file(str(path))
        fp = build(parse_code(meta["code"]), int(meta["channels"]), int(meta["resolution"]), float(meta["strength"]))
        fp.encoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("encoder.")})
        fp.decoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("decoder.")})
    except (SafetensorError, OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read the fingerprint {path} (truncated or not a ganforge fingerprint): {exc}") from exc
    fp.encoder.eval().requires_grad_(False)
    fp.decoder.eval().requires_grad_(False)
    return fp
