"""The demo page's style-transfer section: a small Gatys result (content photo × Van Gogh's
Starry Night, both shipped inside the package under ``ganforge/assets``; see CREDITS.md there)
that takes well under a minute on 2 CPU cores once the VGG19 encoder is on the machine.

The encoder is the default one (``vgg19-torchvision``, downloaded on first use) or another VGG19
already present (e.g. ``vgg19-caffe`` in GANFORGE_WEIGHTS_DIR). Offline without any, the section
says which command fetches the weights and how to point ganforge at a local folder.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
CONTENT = ASSETS / "content_china.jpg"
STYLE = ASSETS / "style_starry_night.jpg"
CREDIT = ("Content photo: &ldquo;china.jpg&rdquo; by danielbuechele, CC BY 2.0 (via scikit-learn), downscaled; "
          "style: Vincent van Gogh, <i>The Starry Night</i> (1889), public domain.")


def _skipped(reason: str) -> str:
    return f"<section><h2>Style transfer</h2><p>Skipped: {reason}</p></section>"


def weights_missing_note(encoder: str) -> str:
    """What to do when the encoder weights are absent and cannot be downloaded (plain words, no
    exception text): the one command that fetches them, and how to use a local folder."""
    from .. import weights

    entry = weights.WEIGHTS.get(encoder)
    why = ("GANFORGE_OFFLINE=1 is set" if weights.offline_mode()
           else "the download failed (offline or the server is unreachable)")
    if entry.url:
        fetch = (f"Run <code>ganforge weights fetch {html.escape(encoder)}</code> (downloads "
                 f"{html.escape(entry.filename)} from {html.escape(entry.url)}) and run the demo again")
    else:
        fetch = "This file has no public download"
    return (f"this section needs the VGG19 encoder weights <code>{html.escape(encoder)}</code>, which are not on this "
            f"machine, and {why}. {fetch}; or put {html.escape(entry.filename)} (or the offline "
            f"<code>vgg19-caffe</code> file) in a folder and set <code>GANFORGE_WEIGHTS_DIR</code> to that folder.")


def demo_section(out_dir: Path, *, content: Path | None = None, style: Path | None = None,
                 size: int = 128, iterations: int = 60, encoder: str | None = None, precision: str = "auto",
                 device: str = "auto") -> str:
    """Write content/style/result JPEGs into ``out_dir`` and return an HTML fragment showing them
    with their similarity numbers. Without the weights it returns a short note saying what to do."""
    from ..errors import WeightsError
    from ..imageio import save_image
    from ..provenance import Provenance
    from ..nets.vgg import pick_encoder
    from .controls import limit_size, to_batch
    from .stylizer import Stylizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    content = Path(content) if content is not None else CONTENT
    style = Path(style) if style is not None else STYLE
    if not (content.is_file() and style.is_file()):
        return _skipped(f"the example images are missing ({html.escape(str(content))}, {html.escape(str(style))}); "
                        f"reinstall ganforge")
    encoder = encoder or pick_encoder()
    st = Stylizer("gatys", encoder=encoder, style_size=size, precision=precision, device=device)
    try:
        st.encoder  # load (or download) now: a missing file is a note, not an error
    except WeightsError:
        return _skipped(weights_missing_note(encoder))
    start = time.perf_counter()
    out = st.stylize_tensor(content, style, max_size=size, preserve_size=False, iterations=iterations)
    seconds = time.perf_counter() - start
    c_small, s_small = limit_size(to_batch(content), size), limit_size(to_batch(style), size)
    report = st.report(out, c_small, s_small, encoder=st.encoder)
    save_image(c_small[0], out_dir / "style_content.jpg", quality=90)
    save_image(s_small[0], out_dir / "style_style.jpg", quality=90)
    save_image(out[0], out_dir / "style_gatys.jpg", quality=90, provenance=Provenance("stylize", "gatys", None,
                                                                                      {"demo": True}, watermark=True))
    (out_dir / "style_metrics.json").write_text(json.dumps({**report, "encoder": encoder,
                                                            "precision": st.precision}, indent=2) + "\n")
    hist = st.last_history
    caption = (f"Gatys ({html.escape(encoder)}, L-BFGS, {len(hist) - 1} evaluations, {size} px, {st.precision}, "
               f"{seconds:.0f} s on this machine): style loss {hist[0]['style']:.3g} &rarr; {hist[-1]['style']:.3g}; "
               f"content SSIM {report['content_ssim']:.0f}%, content feature cosine "
               f"{report['content_feature_cosine']:.0f}%, style mean/std similarity {report['style_meanstd']:.0f}%, "
               f"Gram similarity {report['style_gram']:.0f}%.")
    figs = "".join(
        f'<figure><img src="{name}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'
        for name, alt in (("style_content.jpg", "content"), ("style_style.jpg", "style"), ("style_gatys.jpg", "result")))
    return (f'<section class="style-transfer"><h2>Style transfer</h2><div class="row">{figs}</div>'
            f"<p>{caption}</p><p>{CREDIT}</p><p>Reproduce (in this folder): <code>ganforge stylize style_content.jpg "
            f"--style style_style.jpg --method gatys --encoder {html.escape(encoder)} --max-size {size} "
            f"--iterations {iterations} --out result.jpg --json metrics.json</code></p></section>")
