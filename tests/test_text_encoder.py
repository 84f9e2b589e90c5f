"""Text encoders: the registry, the builtin encoder (deterministic training, R-precision well above
chance on tiny captioned digits, paraphrases close, checkpoint round trip), and CLIP (one line
offline; the loading path exercised with a tiny random open_clip model in open_clip's layout)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import GanforgeError, WeightsError
from ganforge.metrics.rprecision import r_precision
from ganforge.text import TEXT_ENCODERS, build_text_encoder, load_text_encoder
from ganforge.text.builtin import BuiltinTextEncoder, bpe_ids, train_builtin_encoder
from ganforge.text.captions import load_captions
from ganforge.text.digits import build_captioned_digits, load_digit_labels

STEPS = 150


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "digits"
    build_captioned_digits(out, n=400, resolution=16, seed=0, source="digits")
    caps, labels = load_captions(out), load_digit_labels(out)["files"]
    names = sorted(caps)
    images = torch.stack([torch.from_numpy(np.array(Image.open(out / n))).permute(2, 0, 1) for n in names])
    return images, [caps[n] for n in names], [labels[n] for n in names]


@pytest.fixture(scope="module")
def trained(data):
    images, caps, _ = data
    return train_builtin_encoder(images[:320], caps[:320], steps=STEPS, batch_size=32, seed=1, progress=False)


def test_registry_names():
    assert TEXT_ENCODERS.names() == ["builtin", "clip"]
    with pytest.raises(GanforgeError, match="unknown text encoder 'bert'"):
        build_text_encoder("bert")


def test_tokens_come_from_clip_bpe(trained):
    ids = bpe_ids("a red seven")
    assert len(ids) == 3 and all(isinstance(i, int) and i > 255 for i in ids)  # CLIP BPE ids of whole words
    assert set(trained.config()["vocab"]) >= set(ids[1:])  # "red", "seven" occur in the captions
    assert trained.unknown_fraction(["a red seven"]) == 0 and trained.unknown_fraction(["zebra"]) == 1


def test_heldout_r_precision_well_above_chance(trained, data):
    images, caps, labels = data
    rng = np.random.default_rng(0)
    held = [c[rng.integers(len(c))] for c in caps[320:]]
    groups = [(lab["digit"], lab["ink"], lab["background"]) for lab in labels[320:]]
    result = r_precision(trained, images[320:], held, r=10, groups=groups)
    assert result["protocol"]["R"] == 10 and result["images"] == 80
    assert result["r_precision"] >= 0.5, result  # chance is 0.1


def test_paraphrases_closer_than_other_digits(trained):
    e = trained.encode(["a green seven on a black background", "a green 7 on a black background",
                        "the digit seven in green on a black background", "a green two on a black background",
                        "a green 2 on a black background"])
    assert e.shape == (5, trained.dim) and torch.allclose(e.norm(dim=1), torch.ones(5), atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 3] and sim[0, 2] > sim[0, 3] and sim[1, 0] > sim[1, 4] and sim[3, 4] > sim[3, 1]


def test_training_is_deterministic_and_leaves_global_rng(data):
    images, caps, _ = data
    state = torch.random.get_rng_state()
    a = train_builtin_encoder(images[:64], caps[:64], steps=5, batch_size=16, seed=7, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = train_builtin_encoder(images[:64], caps[:64], steps=5, batch_size=16, seed=7, progress=False)
    c = train_builtin_encoder(images[:64], caps[:64], steps=5, batch_size=16, seed=8, progress=False)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and a.config() == b.config()
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_checkpoint_round_trip(trained, data, tmp_path):
    from safetensors.torch import load_file, save_file

    config = json.loads(json.dumps(trained.config()))  # what a run writes
    save_file(trained.state_dict(), str(tmp_path / "enc.safetensors"))
    again = load_text_encoder(config, load_file(str(tmp_path / "enc.safetensors")))
    assert isinstance(again, BuiltinTextEncoder) and again.to("cpu", "fp32") is again
    texts = ["a red two on a white background", "blue 4", "never seen words"]
    assert torch.equal(again.encode(texts), trained.encode(texts))
    assert torch.equal(again.encode_images(data[0][:4]), trained.encode_images(data[0][:4]))
    with pytest.raises(GanforgeError, match="does not match its config"):
        load_text_encoder(config, {})


def test_clip_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path / "empty"))
    with pytest.raises(WeightsError) as err:
        build_text_encoder("clip")
    message = str(err.value)
    assert "\n" not in message
    assert "CLIP weights clip-vit-b-32-openai (ViT-B-32.pt) not available offline" in message
    assert "--text-encoder builtin" in message and str(tmp_path / "empty") in message


TINY_CLIP = {"embed_dim": 16, "quick_gelu": True,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def test_clip_loads_an_open_clip_folder(tmp_path):
    import open_clip
    from safetensors.torch import save_file

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.CLIP(**{k: v for k, v in TINY_CLIP.items()}).eval()
    folder = tmp_path / "tiny-clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    enc = build_text_encoder("clip", model=f"local-dir:{folder}")
    assert enc.dim == 16 and enc.state_dict() == {} and enc.config()["model"] == f"local-dir:{folder}"
    texts = ["a red seven", "a blue two on white"]
    got = enc.encode(texts)
    tokens = open_clip.get_tokenizer("ViT-B-32")(texts)
    with torch.no_grad():
        want = torch.nn.functional.normalize(model.encode_text(tokens), dim=1)
    assert torch.allclose(got, want, atol=1e-5)
    again = load_text_encoder(json.loads(json.dumps(enc.config())), {})
    assert torch.allclose(again.encode(texts), got)
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    assert enc.encode_images(images).shape == (3, 16)
    (folder / "open_clip_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError) as err:
        build_text_encoder("clip", model=f"local-dir:{folder}")
    assert "\n" not in str(err.value)
