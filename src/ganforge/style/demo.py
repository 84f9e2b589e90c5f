"""The demo page's style-transfer section: a small Gatys result that runs offline (vgg19-caffe
only) in well under a minute on 2 CPU cores, plus AdaIN when a decoder is available."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

from ..paths import weights_dir

ASSET_NAMES = ("tubingen.jpg", "starry_night.jpg")


def _find_assets() -> tuple[Path, Path] | None:
    """The shared content/style pair next to the weights directory (…/assets/images/…)."""
    roots = []
    wd = weights_dir()
    if wd is not None:
        roots.append(wd.parent / "images")
    roots.append(Path(__file__).resolve().parents[4] / "shared" / "assets" / "images")
    for root in roots:
        c, s = root / "content" / ASSET_NAMES[0], root / "style" / ASSET_NAMES[1]
        if c.is_file() and s.is_file():
            return c, s
    return None


def demo_section(out_dir: Path, *, content: Path | None = None, style: Path | None = None,
                 size: int = 128, iterations: int = 60) -> str:
    """Write content/style/result JPEGs into ``out_dir`` and return an HTML fragment showing them
    with their similarity numbers. Without the assets or weights it returns a short note instead."""
    from ..errors import GanforgeError
    from ..imageio import save_image
    from .controls import limit_size, to_batch
    from .stylizer import Stylizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if content is None or style is None:
        found = _find_assets()
        if found is None:
            return "<section><h2>Style transfer</h2><p>Skipped: the example images were not found.</p></section>"
        content, style = found
    try:
        st = Stylizer("gatys", style_size=size, precision="bf16")
        start = time.perf_counter()
        out = st.stylize_tensor(content, style, max_size=size, preserve_size=False, iterations=iterations)
        seconds = time.perf_counter() - start
        report = st.report(out, limit_size(to_batch(content), size), limit_size(to_batch(style), size))
    except GanforgeError as exc:
        return f"<section><h2>Style transfer</h2><p>Skipped: {html.escape(str(exc))}</p></section>"
    save_image(limit_size(to_batch(content), size)[0], out_dir / "style_content.jpg", quality=90)
    save_image(limit_size(to_batch(style), size)[0], out_dir / "style_style.jpg", quality=90)
    save_image(out[0], out_dir / "style_gatys.jpg", quality=90)
    (out_dir / "style_metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    hist = st.last_history
    caption = (f"Gatys (vgg19-caffe, L-BFGS, {len(hist) - 1} evaluations, {size} px, {seconds:.0f} s on this "
               f"machine): style loss {hist[0]['style']:.3g} &rarr; {hist[-1]['style']:.3g}; content SSIM "
               f"{report['content_ssim']:.0f}%, content feature cosine {report['content_feature_cosine']:.0f}%, "
               f"style mean/std similarity {report['style_meanstd']:.0f}%, Gram similarity {report['style_gram']:.0f}%.")
    figs = "".join(
        f'<figure><img src="{name}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'
        for name, alt in (("style_content.jpg", "content"), ("style_style.jpg", "style"), ("style_gatys.jpg", "result")))
    return (f'<section class="style-transfer"><h2>Style transfer</h2><div class="row">{figs}</div>'
            f"<p>{caption}</p><p>Reproduce: <code>ganforge stylize {html.escape(content.name)} --style "
            f"{html.escape(style.name)} --method gatys --max-size {size} --iterations {iterations} "
            f"--precision bf16 --out result.jpg --metrics metrics.json</code></p></section>")
