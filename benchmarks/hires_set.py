"""The high-resolution validation set (issue 15): fetch it, evaluate on it, measure the area ratio.

Ten photographs from Debian wallpaper packages (CC-BY / CC-BY-SA / CC0 / GPL / LGPL; none in the
training pool), listed with their package, version, licence and sha256 in
``docs/results/hires/MANIFEST.tsv``. The images are not in the repository; this script rebuilds
them bit for bit::

    .venv/bin/python benchmarks/hires_set.py fetch            # -> data/hires/*.png (1920x1080)
    .venv/bin/python benchmarks/hires_set.py eval             # baselines + mrt-s + ratio + report
    .venv/bin/python benchmarks/hires_set.py eval --skip-baselines --model mrt-x-k8 \\
        --model mrt-x-k16 --name mrt-x                        # a new model beside the stored rest
    .venv/bin/python benchmarks/hires_set.py ratio --ratio-model mrt-s-k16  # 3840x2160 vs 1920x1080
    .venv/bin/python benchmarks/hires_set.py probe            # bpp of the classical grids (no metrics)

``fetch`` gets each package with ``apt-get download PACKAGE=VERSION`` (or takes the ``.deb``
files from ``--debs``), reads the member straight out of the ``.deb`` (ar + data.tar, no
dpkg needed), checks its sha256, then crops the centre to 16:9 (9:16 for a portrait) and
resizes it with Pillow's Lanczos filter to 1920x1080 (1080x1920). The decoded pixels are
checked against ``image_hash`` of the manifest (``mrt.eval.cache.image_hash``, the hash the
results JSON records). ``--native`` writes the verified source files unchanged instead.

``eval`` runs the project's own commands (printed before they run; run it under ``nice``):
``mrt baselines`` (cached under ``cache/baselines``), ``mrt eval`` (files under
``cache/eval-hires``), the area ratio and ``mrt report`` into ``docs/results/hires/``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import lzma
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mrt.eval.cache import image_hash
from mrt.io import atomic_write_bytes, atomic_write_text, encode_image, load_image

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "docs/results/hires/MANIFEST.tsv"
REPORT_DIR = ROOT / "docs/results/hires"
DEFAULT_DATA = ROOT / "data/hires"
DEFAULT_DEBS = ROOT / "cache/hires-debs"
LONG, SHORT = 1920, 1080  # output size (landscape; a portrait source gives SHORT x LONG)



@dataclass(frozen=True)
class BaselineRun:
    """One ``mrt baselines`` call: codecs, their grids, DISTS up to ``heavy_max_bpp``."""

    codecs: str
    grids: tuple[str, ...]
    heavy_max_bpp: str


# The settings that reach about 0.002-0.03 bpp (mean) on these 1920x1080 photographs (measured
# with `probe`, docs/evaluation.md). DISTS costs about a CPU-minute per 1080p image, so it is
# computed for VVC (the BD anchor) only; WebP and JPEG are not run (their smallest files average
# 0.070 and 0.066 bpp here). No FID/KID (see docs/evaluation.md).
BASELINE_RUNS = (
    BaselineRun("vvc", ("vvc=63,59,55,51,48",), "0.04"),
    BaselineRun("jpeg2000,hevc,heic,avif",
                ("jpeg2000=17,19,21,23,24", "hevc=51", "heic=0,5", "avif=0"), "0"),
)
MRT_MODELS = ("mrt-s-k8", "mrt-s-k16", "mrt-s-k32")


class SetError(Exception):
    """The set cannot be built or checked (clear message, exit 1)."""


@dataclass(frozen=True)
class Entry:
    """One manifest row."""

    file: str
    package: str
    version: str
    member: str
    licence: str
    author: str
    source_sha256: str
    width: int
    height: int
    image_hash: str


def read_manifest(path: Path = MANIFEST) -> list[Entry]:
    """The rows of ``MANIFEST.tsv``."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [Entry(r["file"], r["package"], r["version"], r["member"], r["licence"], r["author"],
                  r["source_sha256"], int(r["width"]), int(r["height"]), r["image_hash"])
            for r in rows]


# ---------------------------------------------------------------------------------------------
# fetch: .deb -> member -> sha256 -> crop + resize -> PNG
# ---------------------------------------------------------------------------------------------


def deb_name(package: str, version: str) -> str:
    """The file name ``apt-get download`` gives (the epoch colon is written ``%3a``)."""
    return f"{package}_{version.replace(':', '%3a')}_all.deb"


def get_deb(package: str, version: str, debs: Path) -> Path:
    """The ``.deb`` of ``package=version`` in ``debs``, downloaded with apt-get when missing."""
    path = debs / deb_name(package, version)
    if path.is_file():
        return path
    if shutil.which("apt-get") is None:
        raise SetError(f"{path.name} is not in {debs} and apt-get is not available: put the file "
                       f"there (Debian pool: pool/main/.../{path.name.replace('%3a', ':').split(':')[-1]})")
    debs.mkdir(parents=True, exist_ok=True)
    print(f"apt-get download {package}={version}", file=sys.stderr)
    r = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=debs,
                       capture_output=True, text=True, check=False)
    if r.returncode != 0 or not path.is_file():
        raise SetError(f"apt-get download {package}={version} failed: {r.stderr.strip()[-400:]}")
    return path


def _ar_members(data: bytes) -> dict[str, bytes]:
    """Members of an ``ar`` archive (the container of a ``.deb``)."""
    if not data.startswith(b"!<arch>\n"):
        raise SetError("not a .deb (ar) file")
    out: dict[str, bytes] = {}
    pos = 8
    while pos + 60 <= len(data):
        head = data[pos:pos + 60]
        name = head[:16].decode().strip().rstrip("/")
        size = int(head[48:58].decode().strip())
        out[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)  # members are 2-byte aligned
    return out


def deb_member(deb: Path, member: str) -> bytes:
    """The bytes of one file of the package's ``data.tar.{xz,gz}``."""
    parts = _ar_members(deb.read_bytes())
    if "data.tar.xz" in parts:
        raw = lzma.decompress(parts["data.tar.xz"])
    elif "data.tar.gz" in parts or "data.tar" in parts:
        raw = parts.get("data.tar") or gzip.decompress(parts["data.tar.gz"])
    else:
        raise SetError(f"{deb.name}: no data.tar.xz/gz (members {sorted(parts)})")
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for cand in (f"./{member}", member):
            try:
                f = tar.extractfile(cand)
            except KeyError:
                continue
            if f is not None:
                return f.read()
    raise SetError(f"{deb.name} has no file {member}")


def centre_box(w: int, h: int, aspect: float) -> tuple[float, float, float, float]:
    """The largest centred box of width/height ``aspect`` inside ``w`` x ``h`` (float edges)."""
    if w / h > aspect:
        cw = h * aspect
        return ((w - cw) / 2, 0.0, (w + cw) / 2, float(h))
    ch = w / aspect
    return (0.0, (h - ch) / 2, float(w), (h + ch) / 2)


def prepare(src: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre crop of ``src`` to ``width:height``, resized there with Lanczos (uint8 RGB)."""
    box = centre_box(src.shape[1], src.shape[0], width / height)
    out = Image.fromarray(src).resize((width, height), Image.Resampling.LANCZOS, box=box)
    return np.asarray(out)


def fetch_one(e: Entry, debs: Path, out: Path, native: bool, force: bool) -> str:
    """Build one image of the set; its ``image_hash`` (``''`` for ``native``)."""
    data = deb_member(get_deb(e.package, e.version, debs), e.member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != e.source_sha256:
        raise SetError(f"{e.file}: sha256 of {e.package} {e.version}:{e.member} is {digest}, "
                       f"the manifest says {e.source_sha256}")
    if native:
        atomic_write_bytes(out / (Path(e.file).stem + Path(e.member).suffix), data, force=force)
        return ""
    px = prepare(load_image(data), e.width, e.height)
    got = image_hash(px)
    if e.image_hash and got != e.image_hash:
        raise SetError(f"{e.file}: prepared pixels hash {got}, the manifest says {e.image_hash} "
                       f"(another Pillow/libjpeg? this one: Pillow {Image.__version__})")
    atomic_write_bytes(out / e.file, encode_image(px, ".png"), force=force)
    return got


def cmd_fetch(args: argparse.Namespace) -> int:
    """``fetch``: every image of the manifest into ``--out``."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for e in read_manifest(Path(args.manifest)):
        h = fetch_one(e, Path(args.debs), out, args.native, force=True)
        size = "native" if args.native else f"{e.width}x{e.height}"
        print(f"{e.file:18s} {size:9s} {e.licence.split(' ')[0]:12s} {h}")
    print(f"wrote {out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------
# probe: which classical settings reach the rates (sizes only, no metrics)
# ---------------------------------------------------------------------------------------------


def cmd_probe(args: argparse.Namespace) -> int:
    """``probe``: mean bpp of each codec's settings on the set (encode only; cheap)."""
    from mrt.eval.baselines import get_baseline  # noqa: PLC0415

    imgs = [load_image(p) for p in sorted(Path(args.data).glob("*.png"))]
    for spec in args.grid:
        name, vals = spec.split("=", 1)
        b = get_baseline(name)
        for q in (float(v) for v in vals.split(",")):
            bpp = [len(b.encode(im, q)) * 8 / (im.shape[0] * im.shape[1]) for im in imgs]
            print(f"{name:9s} {b.format_quality(q):>6s}: mean {np.mean(bpp):.4f} bpp "
                  f"(min {min(bpp):.4f}, max {max(bpp):.4f})", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# ratio: 3840x2160 (Lanczos upscale) against 1920x1080
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatioRow:
    """One model on one image: file bytes at 1920x1080 and at the 2x Lanczos upscale."""

    model: str
    model_id: str
    image: str
    base_size: str  # "WxH"
    base_bytes: int
    up2_size: str
    up2_bytes: int
    enc_s: float  # both encodes, wall clock
    created: str
    format_version: int = 0  # of the files written (0: rows from before it was recorded; never reused)

    @property
    def ratio(self) -> float:
        return self.up2_bytes / self.base_bytes


def _model_id(codec: object) -> str:
    mid = getattr(codec, "model_id", None)
    return f"{mid:06x}" if isinstance(mid, int) else str(mid)


def area_ratio(model: str, image: Path, known: dict[tuple[str, str, str], RatioRow]) -> RatioRow:
    """Bytes of ``image`` and of its 2x Lanczos upscale coded with ``model`` (``known``: earlier
    rows of the current file format by (model, model id, image), reused instead of encoding again)."""
    from mrt.bitstream import VERSION  # noqa: PLC0415
    from mrt.codec import Codec  # noqa: PLC0415

    codec = Codec.load(model)
    key = (model, _model_id(codec), image.name)
    if key in known:
        return known[key]
    small = load_image(image)
    h, w = small.shape[:2]
    big = np.asarray(Image.fromarray(small).resize((2 * w, 2 * h), Image.Resampling.LANCZOS))
    t0 = time.perf_counter()
    nb, nu = len(codec.compress(small)), len(codec.compress(big))
    return RatioRow(model, key[1], image.name, f"{w}x{h}", nb, f"{2 * w}x{2 * h}", nu,
                    time.perf_counter() - t0, time.strftime("%Y-%m-%d %H:%M:%S"), VERSION)


def _bpp(nbytes: int, size: str) -> float:
    w, h = (int(v) for v in size.split("x"))
    return nbytes * 8 / (w * h)


def ratio_markdown(rows: list[RatioRow]) -> str:
    """``area_ratio.md``: one row per (model, image)."""
    lines = ["# Rate against area: a 2x Lanczos upscale against the photograph", "",
             f"Generated by `benchmarks/hires_set.py ratio` (or `eval`) on "
             f"{time.strftime('%Y-%m-%d %H:%M')}; do not edit by hand. Rows of earlier runs are kept "
             "(`area_ratio.json`).", "",
             "Bytes of the whole `.mrt` file of the photograph and of its 2x Lanczos upscale "
             "(3840x2160 from 1920x1080). The upscale adds no content: a codec whose rate follows "
             "the content, not the area, costs well under 4x.", "",
             "| model (id) | format | image | bytes (bpp) | 2x upscale: bytes (bpp) | ratio |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.model} ({r.model_id}) | {r.format_version or '1-2'} | {r.image} {r.base_size} | {r.base_bytes} "
                     f"({_bpp(r.base_bytes, r.base_size):.4f}) | {r.up2_bytes} "
                     f"({_bpp(r.up2_bytes, r.up2_size):.4f}) | {r.ratio:.2f}x |")
    return "\n".join(lines) + "\n"


def cmd_ratio(args: argparse.Namespace) -> int:
    """``ratio``: measure (or reuse) and write ``area_ratio.json`` / ``.md`` into ``--report``."""
    import torch  # noqa: PLC0415

    from mrt.bitstream import VERSION  # noqa: PLC0415

    torch.set_num_threads(max(1, args.threads))
    path = Path(args.report) / "area_ratio.json"
    old = [RatioRow(**r) for r in json.loads(path.read_text())] if path.is_file() else []
    rows = {(r.model, r.model_id, r.image, r.format_version): r for r in old}  # older formats' rows stay
    for m in args.ratio_model:
        for img in args.ratio_image:
            current = {k[:3]: r for k, r in rows.items() if r.format_version == VERSION}
            r = area_ratio(m, Path(args.data) / img, current)
            rows[(r.model, r.model_id, r.image, r.format_version)] = r
            print(f"{m} ({r.model_id}) {img}: {r.base_bytes} -> {r.up2_bytes} bytes, ratio {r.ratio:.3f}")
    out = sorted(rows.values(), key=lambda r: (r.created, r.model, r.image))
    atomic_write_text(path, json.dumps([asdict(r) for r in out], indent=1) + "\n", force=True)
    atomic_write_text(path.with_suffix(".md"), ratio_markdown(out), force=True)
    return 0


# ---------------------------------------------------------------------------------------------
# eval: the project's commands on the set, then the report
# ---------------------------------------------------------------------------------------------


def _mrt() -> list[str]:
    """The ``mrt`` command of this environment."""
    exe = Path(sys.executable).with_name("mrt")
    return [str(exe)] if exe.is_file() else ["mrt"]


def _run(cmd: list[str]) -> None:
    """Print and run one command; :class:`SetError` when it fails."""
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    if subprocess.run(cmd, cwd=ROOT, check=False).returncode != 0:
        raise SetError(f"command failed: {' '.join(cmd)}")


def eval_commands(args: argparse.Namespace) -> list[list[str]]:
    """``mrt baselines`` (unless skipped) and ``mrt eval`` on the set, writing ``<report>/json``."""
    data, js = str(args.data), str(Path(args.report) / "json")
    common = ["--no-fid", "--threads", str(args.threads)]
    cmds = []
    for run in () if args.skip_baselines else BASELINE_RUNS:
        cmds.append([*_mrt(), "baselines", data, "--codecs", run.codecs,
                     *(a for g in run.grids for a in ("--qualities", g)),
                     "--heavy-max-bpp", run.heavy_max_bpp, "-o", js, *common])
    if args.model:
        cmds.append([*_mrt(), "eval", data, *(a for m in args.model for a in ("--model", m)),
                     "--name", args.name, "--description", args.description,
                     "--bitstreams", "cache/eval-hires", "-o", js, *common])
    return cmds


def cmd_eval(args: argparse.Namespace) -> int:
    """``eval``: baselines, MRT models, the area ratio, the report."""
    if not Path(args.data).is_dir() or not any(Path(args.data).glob("*.png")):
        raise SetError(f"no images in {args.data}: run `benchmarks/hires_set.py fetch` first")
    for cmd in eval_commands(args):
        _run(cmd)
    if not args.skip_ratio:
        cmd_ratio(args)
    return cmd_report(args)


def cmd_report(args: argparse.Namespace) -> int:
    """``report``: ``mrt report`` of ``<report>/json`` into ``<report>`` (no evaluation)."""
    _run([*_mrt(), "report", "--results", str(Path(args.report) / "json"), "-o", str(args.report),
          "--visual", str(Path(args.data) / args.visual), "--crop", args.crop,
          "--visual-cache", "cache/visual-hires"])
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="build the set from the Debian packages (sha256-checked)")
    f.add_argument("--out", type=Path, default=DEFAULT_DATA)
    f.add_argument("--debs", type=Path, default=DEFAULT_DEBS, help="where the .deb files are kept")
    f.add_argument("--manifest", type=Path, default=MANIFEST)
    f.add_argument("--native", action="store_true", help="write the verified source files unchanged")
    p = sub.add_parser("probe", help="mean bpp of classical settings on the set (no metrics)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--grid", action="append", default=None, metavar="CODEC=Q,Q,...")
    r = sub.add_parser("report", help="only regenerate the report from <report>/json")
    for name, what in (("ratio", "bytes at 3840x2160 (2x Lanczos) against 1920x1080"),
                       ("eval", "baselines, MRT models, the area ratio and the report")):
        s = sub.add_parser(name, help=what)
        for a in (s, r) if name == "eval" else (s,):
            a.add_argument("--data", type=Path, default=DEFAULT_DATA)
            a.add_argument("--report", type=Path, default=REPORT_DIR)
        s.add_argument("--threads", type=int, default=1)
        s.add_argument("--ratio-model", action="append", default=None, metavar="NAME|PATH",
                       help="model(s) of the area ratio (default: the middle --model, mrt-s-k16)")
        s.add_argument("--ratio-image", action="append", default=None, metavar="FILE",
                       help="image(s) of the area ratio (default: bridge.png)")
    s.add_argument("--model", action="append", default=None, metavar="NAME|PATH",
                   help="MRT model(s), one rate point each (default: mrt-s-k8, -k16, -k32)")
    s.add_argument("--name", default="mrt-s", help="result-set name of the models (default: %(default)s)")
    s.add_argument("--description", default="mrt-s family (shipped default, third release), "
                   "hires 1920x1080, real files")
    s.add_argument("--skip-baselines", action="store_true", help="only MRT (baselines: from the JSON)")
    s.add_argument("--skip-ratio", action="store_true")
    for a in (s, r):
        a.add_argument("--visual", default="friends.png", help="image of the visual comparison")
        a.add_argument("--crop", default="260,440,512,320", help="crop X,Y,W,H of the visual comparison")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "probe" and not args.grid:
        args.grid = [g for run in BASELINE_RUNS for g in run.grids]
    if args.cmd == "eval":
        args.model = args.model or list(MRT_MODELS)
    if args.cmd in ("ratio", "eval"):
        models = getattr(args, "model", None) or list(MRT_MODELS)
        args.ratio_model = args.ratio_model or [models[len(models) // 2]]  # the middle rate
        args.ratio_image = args.ratio_image or ["bridge.png"]
    try:
        cmds = {"fetch": cmd_fetch, "probe": cmd_probe, "ratio": cmd_ratio, "eval": cmd_eval,
                "report": cmd_report}
        return cmds[args.cmd](args)
    except SetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
