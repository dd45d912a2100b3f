"""Still pictures in and out: JPEG, PNG, TIFF and WebP (8 or 16 bits per channel) with their
metadata, and camera raw files through rawpy (LibRaw).

Pixels are read as stored: the EXIF orientation is not applied, and it is written back
unchanged, so a viewer shows the result the way it showed the original. The ICC profile, EXIF
and XMP travel with the pixels (see write_still for what TIFF keeps). Pillow reads and writes
JPEG, PNG and WebP, reads all metadata and lays out EXIF directories; OpenCV handles the pixels
of 16-bit PNG (Pillow has no 16-bit RGB mode); tifffile handles the pixels of TIFF. Pillow and
tifffile are the `stills` extra, rawpy the `raw` extra.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamdn.atomic import temp_path_for
from streamdn.errors import ConfigError, SinkError, SourceError, warn

# Extension -> format of the pictures streamdn reads and writes.
STILL_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
# Camera raw files (read only, through rawpy/LibRaw).
RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf",
                            ".rw2", ".pef", ".srw", ".rwl", ".3fr", ".fff", ".iiq", ".erf", ".kdc", ".dcr", ".mrw",
                            ".mos", ".mef", ".x3f", ".raw"})
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")   # the output formats that keep 16 bits per channel

# EXIF tags of the main IFD that describe the picture (not its storage): what moves between
# formats. 0x8769 and 0x8825 point at the EXIF and GPS sub-IFDs, 0xA005 (inside the EXIF IFD)
# at the interoperability IFD.
_DESCRIPTIVE_TAGS = (0x010E, 0x010F, 0x0110, 0x0112, 0x0131, 0x0132, 0x013B, 0x8298)
_EXIF_IFD, _GPS_IFD, _INTEROP_IFD = 0x8769, 0x8825, 0xA005
_ORIENTATION, _SOFTWARE, _MAKER_NOTE = 0x0112, 0x0131, 0x927C
_INTEROP_TAGS = (0x0001, 0x0002, 0x1000, 0x1001, 0x1002)   # the interoperability IFD's tags (index, version, ...)
_XMP_PNG_KEY = "XML:com.adobe.xmp"
_EXIF_PREFIX = b"Exif\x00\x00"   # how JPEG's APP1 (and Pillow) start an EXIF block


@dataclass
class Still:
    """One picture with its metadata.

    Attributes:
        rgb: (H, W, 3) uint8 or uint16, RGB, the pixels as stored (EXIF orientation not applied).
        alpha: (H, W) of the same dtype, or None; carried through untouched.
        grey: the file was greyscale; it is written back with one channel.
        icc_profile: the embedded ICC profile, or None.
        exif: the EXIF block as Pillow gives and takes it ("Exif\\0\\0", then TIFF-structured tags), or None.
        xmp: the XMP packet (UTF-8 XML), or None.
        source: what was read, for messages ("JPEG", "PNG", "TIFF", "WEBP", "RAW").
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    grey: bool = False
    icc_profile: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    source: str = ""

    @property
    def bit_depth(self) -> int:
        return 8 if self.rgb.dtype == np.uint8 else 16

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def orientation(self) -> int:
        """The EXIF orientation (1 = as stored; 6 = rotate 90° clockwise to view, ...)."""
        if not self.exif:
            return 1
        return int(_load_exif(self.exif).get(_ORIENTATION, 1) or 1)

    def with_rgb(self, rgb: np.ndarray) -> Still:
        """A copy with new pixels of the same size (the alpha is converted to their dtype)."""
        alpha = self.alpha
        if alpha is not None and alpha.dtype != rgb.dtype:
            alpha = _convert_depth(alpha, rgb.dtype)
        return replace(self, rgb=rgb, alpha=alpha)


def is_still(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a picture or a raw file by its extension (not a video)."""
    ext = Path(path).suffix.lower()
    return ext in STILL_FORMATS or ext in RAW_EXTENSIONS


def output_format(path: str | os.PathLike[str]) -> str:
    """The format an output path asks for by its extension.

    Raises:
        ConfigError: an extension streamdn cannot write a picture to.
    """
    ext = Path(path).suffix.lower()
    if ext not in STILL_FORMATS:
        raise ConfigError(f"'{path}': cannot write a picture as '{ext or 'no extension'}'; name the output "
                          f".jpg, .png, .tif or .webp (16 bits per channel: .png or .tif).")
    return STILL_FORMATS[ext]


# -- reading -----------------------------------------------------------------------------------


def read_still(path: str | os.PathLike[str]) -> Still:
    """Reads a JPEG, PNG, TIFF or WebP picture (8 or 16 bits) with its metadata.

    Raises:
        SourceError: the file is missing, has another extension, or is damaged or of a kind
            not handled (CMYK, palette TIFF, floating point, a codec that is not installed).
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext in RAW_EXTENSIONS:
        return read_raw(path)
    if ext not in STILL_FORMATS:
        raise SourceError(f"'{path}': '{ext or 'no extension'}' is not a picture format streamdn reads; use "
                          f"JPEG, PNG, TIFF, WebP or a camera raw file (DNG, CR2, NEF, ARW, ...).")
    if not path.is_file():
        raise SourceError(f"'{path}' does not exist or is not a file; check the path.")
    fmt = STILL_FORMATS[ext]
    try:
        if fmt == "TIFF":
            still = _read_tiff(path)
        elif fmt == "PNG" and _png_bit_depth(path) == 16:
            still = _read_png16(path)
        else:
            still = _read_pillow(path, fmt)
    except SourceError:
        raise
    except Exception as err:  # the decoders raise OSError, ValueError, SyntaxError, struct.error ...
        raise SourceError(f"'{path}' could not be read as {fmt} ({type(err).__name__}: {err}); the file is "
                          f"damaged or not really a {fmt} picture; re-export it or check its extension.") from err
    still.source = fmt
    return still


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as err:
        raise ConfigError("pictures need Pillow: pip install 'streamdn[stills]'.") from err
    Image.MAX_IMAGE_PIXELS = 400_000_000   # big panoramas are fine; PIL's default refuses ~180 MP
    return Image


def _read_pillow(path: Path, fmt: str) -> Still:
    Image = _pillow()
    with Image.open(path) as im:
        if im.format != fmt and not (fmt == "JPEG" and im.format == "MPO"):   # MPO: a JPEG with extra pictures
            raise SourceError(f"'{path}' holds a {im.format} picture, not {fmt}; rename it to the right "
                              f"extension.")
        im.load()   # decodes now: a truncated or damaged file fails here
        meta = _pillow_metadata(im)
        mode = im.mode
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode == "1":
            im = im.convert("L")
        elif mode == "PA":
            im = im.convert("RGBA")
        elif mode not in ("L", "LA", "RGB", "RGBA"):
            raise SourceError(f"'{path}': {mode} pictures are not supported; convert it to RGB (8 or 16 bits) first.")
        a = np.asarray(im)
    return _from_channels(a, im.mode in ("L", "LA"), meta)


def _pillow_metadata(im: Any) -> dict[str, Any]:
    """ICC profile, EXIF block and XMP packet of an open Pillow image."""
    icc = im.info.get("icc_profile") or None
    exif = im.info.get("exif") or None
    if isinstance(exif, bytes) and not exif.startswith(_EXIF_PREFIX):
        exif = _EXIF_PREFIX + exif
    if not exif:
        ex = im.getexif()
        exif = _descriptive_exif(ex).tobytes() if len(ex) else None
    xmp = im.info.get("xmp") or im.info.get(_XMP_PNG_KEY) or None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return {"icc_profile": icc, "exif": exif, "xmp": xmp}


def _from_channels(a: np.ndarray, grey: bool, meta: dict[str, Any]) -> Still:
    """A Still from an (H, W), (H, W, 1..4) RGB(A) or grey(+alpha) array."""
    if a.ndim == 2:
        a = a[..., None]
    alpha = None
    if a.shape[2] in (2, 4):
        alpha = np.ascontiguousarray(a[..., -1])
        a = a[..., :-1]
    if a.shape[2] == 1:
        grey = True
        a = np.repeat(a, 3, axis=2)
    return Still(np.ascontiguousarray(a), alpha=alpha, grey=grey, **meta)


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or not head.startswith(b"\x89PNG\r\n\x1a\n") or head[12:16] != b"IHDR":
        raise SourceError(f"'{path}' is not a PNG file (no PNG signature); the file is damaged or not a "
                          f"picture.")
    return head[24]


def _read_png16(path: Path) -> Still:
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if a is None:
        raise SourceError(f"'{path}': the 16-bit PNG could not be decoded; the file is damaged.")
    if a.ndim == 3:
        a = a[..., [2, 1, 0, 3]] if a.shape[2] == 4 else a[..., ::-1]
    Image = _pillow()
    with Image.open(path) as im:
        meta = _pillow_metadata(im)
    return _from_channels(a.astype(np.uint16, copy=False), a.ndim == 2, meta)


def _tifffile() -> Any:
    try:
        import tifffile
    except ImportError as err:
        raise ConfigError("TIFF pictures need tifffile: pip install 'streamdn[stills]'.") from err
    return tifffile


def _read_tiff(path: Path) -> Still:
    tifffile = _tifffile()
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        photometric = int(page.photometric)
        if photometric not in (1, 2):   # MINISBLACK, RGB
            name = getattr(page.photometric, "name", photometric)
            raise SourceError(f"'{path}': TIFF with photometric {name} is not supported; save it as RGB or "
                              f"greyscale, 8 or 16 bits.")
        if page.dtype not in (np.uint8, np.uint16):
            raise SourceError(f"'{path}': TIFF samples of type {page.dtype} are not supported; save it with 8 "
                              f"or 16 bits per channel.")
        try:
            a = page.asarray()
        except (ValueError, NotImplementedError, KeyError) as err:
            if "imagecodecs" in str(err):
                raise SourceError(f"'{path}': the TIFF's compression ({page.compression.name}) needs the "
                                  f"imagecodecs package: pip install imagecodecs.") from err
            raise
        if int(page.planarconfig) == 2 and a.ndim == 3:   # SEPARATE: (samples, H, W)
            a = np.moveaxis(a, 0, -1)
        tags = page.tags
        icc = tags[34675].value if 34675 in tags else None
        xmp = tags[700].value if 700 in tags else None
    exif = _tiff_exif(path)
    return _from_channels(a, photometric == 1, {"icc_profile": bytes(icc) if icc else None, "exif": exif,
                                                "xmp": bytes(xmp) if xmp else None})


def _descriptive_exif(ex: Any) -> Any:
    """The descriptive part of a Pillow Exif: main-IFD tags that describe the picture, and the
    EXIF and GPS sub-IFDs (a TIFF's structural tags, such as its strip offsets, are dropped)."""
    out = _pillow().Exif()
    for tag in _DESCRIPTIVE_TAGS:
        if tag in ex:
            out[tag] = ex[tag]
    for tag, sub in _portable_ifds(ex.get_ifd).items():
        out[tag] = sub
    return out


def _portable_ifds(get_ifd: Any) -> dict[int, dict[int, Any]]:
    """The EXIF and GPS sub-IFDs, as `get_ifd(tag)` gives them (a Pillow Exif's get_ifd), made
    into dicts that can be written at any place in a file: the interoperability IFD inside the
    EXIF IFD becomes a nested dict (its old offset would point nowhere), and the maker note
    (private camera data whose internal offsets break when it moves) is left out."""
    out: dict[int, dict[int, Any]] = {}
    for tag in (_EXIF_IFD, _GPS_IFD):
        sub = dict(get_ifd(tag) or {})
        if tag == _EXIF_IFD:
            sub.pop(_MAKER_NOTE, None)
            interop = sub.pop(_INTEROP_IFD, None)
            if interop is not None:
                inner = interop if isinstance(interop, dict) else get_ifd(_INTEROP_IFD)
                inner = {k: v for k, v in (inner or {}).items() if k in _INTEROP_TAGS}
                if inner:
                    sub[_INTEROP_IFD] = inner
        if sub:
            out[tag] = sub
    return out


def _tiff_exif(path: Path) -> bytes | None:
    """The descriptive EXIF of a TIFF-structured file (TIFF, DNG and most raw formats), read
    with Pillow's TIFF directory reader: the main IFD's descriptive tags and the EXIF, GPS and
    interoperability IFDs (see _portable_ifds); None when the file is not TIFF-structured or has
    none."""
    try:
        from PIL.TiffImagePlugin import ImageFileDirectory_v2

        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")   # Pillow warns about odd tags it skips
            head = fh.read(8)

            def load(offset: int, group: int | None = None) -> Any:
                ifd = ImageFileDirectory_v2(head, group=group)   # SyntaxError: not TIFF-structured
                fh.seek(offset)
                ifd.load(fh)
                return ifd

            main = load(ImageFileDirectory_v2(head).next)
            subs: dict[int, dict[int, Any]] = {}

            def get_ifd(tag: int) -> dict[int, Any]:
                if tag not in subs:
                    subs[tag] = {}
                    offset = (subs.get(_EXIF_IFD, {}) if tag == _INTEROP_IFD else main).get(tag)
                    if isinstance(offset, int) and offset > 0:
                        try:
                            subs[tag] = dict(load(offset, tag))
                        except Exception:  # noqa: BLE001 - a broken directory is left out, the rest kept
                            pass
                return subs[tag]

            out = _pillow().Exif()
            for tag in _DESCRIPTIVE_TAGS:
                if tag in main:
                    out[tag] = main[tag]
            for tag, sub in _portable_ifds(get_ifd).items():
                out[tag] = sub
        return out.tobytes() if len(out) else None
    except Exception:  # metadata is a courtesy: a file whose pixels decode is still denoised
        return None


def _load_exif(block: bytes) -> Any:
    Image = _pillow()
    ex = Image.Exif()
    ex.load(block if block.startswith(_EXIF_PREFIX) else _EXIF_PREFIX + block)
    return ex


# -- camera raw --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawDevelop:
    """How a camera raw file is developed into RGB (rawpy's postprocess options).

    Attributes:
        auto_bright: brighten so that 1 % of the pixels clip, as LibRaw does by default.
        camera_white_balance: use the camera's white balance (else LibRaw's daylight default).
    """

    auto_bright: bool = True
    camera_white_balance: bool = True


def read_raw(path: str | os.PathLike[str], develop: RawDevelop = RawDevelop()) -> Still:
    """Develops a camera raw file into a 16-bit sRGB Still (LibRaw's AHD demosaic, sRGB primaries
    and transfer curve, an sRGB ICC profile). The camera's orientation is applied to the pixels
    (LibRaw turns them), so the Still's orientation is 1; descriptive EXIF is kept when Pillow
    can read the file's TIFF structure (DNG, NEF, CR2, ARW ...).

    Raises:
        ConfigError: rawpy is not installed.
        SourceError: a missing file, or one LibRaw cannot decode.
    """
    path = Path(path)
    try:
        import rawpy
    except ImportError as err:
        raise ConfigError(f"'{path}': camera raw files need rawpy: pip install 'streamdn[raw]'.") from err
    if not path.is_file():
        raise SourceError(f"'{path}' does not exist or is not a file; check the path.")
    try:
        with rawpy.imread(str(path)) as raw:
            rgb = raw.postprocess(output_bps=16, use_camera_wb=develop.camera_white_balance,
                                  output_color=rawpy.ColorSpace.sRGB, gamma=(2.4, 12.92),
                                  no_auto_bright=not develop.auto_bright)
    except (rawpy.LibRawError, OSError, ValueError) as err:
        raise SourceError(f"'{path}' could not be decoded as a camera raw file ({type(err).__name__}: {err}); "
                          f"the file is damaged or its camera is not supported by LibRaw "
                          f"{'.'.join(map(str, rawpy.libraw_version))}.") from err
    exif = _tiff_exif(path)   # many raw formats are TIFF-structured (DNG, NEF, CR2, ARW ...)
    if exif is not None:
        ex = _load_exif(exif)
        ex[_ORIENTATION] = 1
        exif = ex.tobytes()
    return Still(np.ascontiguousarray(rgb), icc_profile=srgb_profile(), exif=exif, source="RAW")


def srgb_profile() -> bytes:
    """An sRGB ICC profile (LittleCMS's, through Pillow) for pictures developed into sRGB."""
    from PIL import ImageCms

    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


# -- writing -----------------------------------------------------------------------------------


def write_still(still: Still, path: str | os.PathLike[str], *, quality: int = 95) -> None:
    """Writes `still` in the format its extension names, atomically (a temporary file beside it,
    then a rename; an existing file of that name is replaced).

    JPEG and WebP hold 8 bits: a 16-bit picture is rounded to 8 bits, with one warning.
    JPEG, PNG and WebP keep the ICC profile, the whole EXIF block and the XMP packet. TIFF keeps
    the ICC profile, the XMP packet, the descriptive tags of the main EXIF directory
    (orientation, make, model, date, software, artist, copyright, description) and the EXIF,
    GPS and interoperability directories (exposure, ISO, lens, dates, position ...); it leaves
    out the maker note, private camera data that breaks when moved.

    Args:
        quality: JPEG and WebP quality (1..100).

    Raises:
        ConfigError: an extension that is not a picture format, a bad quality.
        SinkError: the file cannot be written.
    """
    fmt = output_format(path)
    if not 1 <= quality <= 100:
        raise ConfigError(f"quality {quality}: use 1..100 (95 keeps fine grain, 85 is a typical export).")
    if still.bit_depth == 16 and fmt not in SIXTEEN_BIT_FORMATS:
        warn(f"{fmt} holds 8 bits per channel: the 16-bit picture is rounded to 8 bits for '{path}' "
             f"(write .png or .tif to keep 16 bits).")
        still = still.with_rgb(_convert_depth(still.rgb, np.dtype(np.uint8)))
    tmp = temp_path_for(path)
    try:
        if fmt == "TIFF":
            _write_tiff(still, tmp)
        elif fmt == "PNG" and still.bit_depth == 16:
            _write_png16(still, tmp)
        else:
            _write_pillow(still, tmp, fmt, quality)
        os.replace(tmp, path)
    except OSError as err:
        raise SinkError(f"cannot write '{path}' ({err}); check the folder exists and is writable and the "
                        f"disk has room.") from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _channels(still: Still) -> np.ndarray:
    """The array to store: grey or RGB, with the alpha channel when there is one."""
    a = still.rgb
    if still.grey:
        a = (a.astype(np.uint32).sum(axis=2) + 1) // 3
        a = a.astype(still.rgb.dtype)[..., None]
    if still.alpha is not None:
        a = np.concatenate([a, still.alpha[..., None]], axis=2)
    return a[..., 0] if a.shape[2] == 1 else a


def _write_pillow(still: Still, path: str, fmt: str, quality: int) -> None:
    Image = _pillow()
    a = _channels(still)
    if fmt == "JPEG" and still.alpha is not None:
        warn("JPEG has no transparency: the alpha channel is dropped.")
        a = _channels(replace(still, alpha=None))
    im = Image.fromarray(a)
    opts: dict[str, Any] = {}
    if still.icc_profile:
        opts["icc_profile"] = still.icc_profile
    if still.exif:
        opts["exif"] = still.exif
    if fmt == "JPEG":
        opts.update(quality=quality, optimize=True)
        if still.xmp:
            opts["xmp"] = still.xmp
    elif fmt == "WEBP":
        opts.update(quality=quality, method=4)
        if still.xmp:
            opts["xmp"] = still.xmp
    elif fmt == "PNG" and still.xmp:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_itxt(_XMP_PNG_KEY, still.xmp.decode("utf-8", "replace"))
        opts["pnginfo"] = info
    im.save(path, fmt, **opts)


def _write_png16(still: Still, path: str) -> None:
    a = _channels(still)
    if a.ndim == 3:
        a = a[..., [2, 1, 0, 3]] if a.shape[2] == 4 else a[..., ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError("the PNG encoder failed")
    data = buf.tobytes()
    # Metadata chunks go right after IHDR (8-byte signature + 25-byte IHDR chunk), before IDAT.
    chunks = b""
    if still.icc_profile:
        chunks += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(still.icc_profile))
    if still.exif:
        chunks += _png_chunk(b"eXIf", still.exif.removeprefix(_EXIF_PREFIX))
    if still.xmp:
        chunks += _png_chunk(b"iTXt", _XMP_PNG_KEY.encode("latin-1") + b"\x00\x00\x00\x00\x00" + still.xmp)
    with open(path, "wb") as fh:
        fh.write(data[:33] + chunks + data[33:])


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _write_tiff(still: Still, path: str) -> None:
    tifffile = _tifffile()
    a = _channels(still)
    extra: list[tuple[int, int, int | None, Any, bool]] = []
    if still.xmp:
        extra.append((700, 1, len(still.xmp), still.xmp, True))
    software: str | bool = False   # tifffile names itself unless told otherwise
    ifds: dict[int, dict[int, Any]] = {}
    if still.exif:
        ex = _load_exif(still.exif)
        for tag in _DESCRIPTIVE_TAGS:
            value = ex.get(tag)
            if tag == _ORIENTATION and value:
                extra.append((tag, 3, 1, int(value), True))
            elif tag == _SOFTWARE and isinstance(value, str) and value.strip("\0 "):
                software = value.strip("\0")
            elif isinstance(value, str) and value:
                extra.append((tag, 2, None, value, True))
        ifds = _portable_ifds(ex.get_ifd)
    photometric = "minisblack" if still.grey else "rgb"
    tifffile.imwrite(path, a, photometric=photometric, compression="zlib", iccprofile=still.icc_profile,
                     extrasamples=(2,) if still.alpha is not None else None,   # 2: unassociated alpha
                     description=None, metadata=None, software=software, extratags=extra)
    if ifds:
        _add_tiff_ifds(path, ifds)


def _add_tiff_ifds(path: str, ifds: dict[int, dict[int, Any]]) -> None:
    """Adds sub-IFDs (EXIF, GPS: tag -> {tag: value}) to the main IFD of the classic TIFF at
    `path`, which tifffile cannot write: Pillow lays out each directory for its place at the end
    of the file, a copy of the main IFD with their pointers follows them (the entries' values
    stay where they are: their offsets are absolute), and the header points at the copy.
    A tag Pillow cannot write is left out; a BigTIFF (over 4 GB) gets none, with a warning."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    with open(path, "r+b") as fh:
        head = fh.read(8)
        order = "<" if head[:2] == b"II" else ">"
        if struct.unpack(order + "H", head[2:4])[0] != 42:
            warn(f"'{path}' is a BigTIFF: its EXIF exposure, lens and GPS data are not written.")
            return
        fh.seek(struct.unpack(order + "I", head[4:8])[0])
        (count,) = struct.unpack(order + "H", fh.read(2))
        raw = fh.read(12 * count)
        next_ifd = fh.read(4)
        entries = {struct.unpack(order + "H", raw[i:i + 2])[0]: raw[i:i + 12] for i in range(0, len(raw), 12)}
        pos = fh.seek(0, os.SEEK_END)
        pad = pos % 2   # directories start on a word boundary
        pos += pad
        blobs = []
        for tag, values in sorted(ifds.items()):
            ifd = ImageFileDirectory_v2(head, group=tag)
            for key, value in values.items():
                if _writable(head, tag, key, value):
                    ifd[key] = value
            if len(ifd):
                data = ifd.tobytes(pos)
                entries[tag] = struct.pack(order + "HHII", tag, 4, 1, pos)   # type 4: LONG, one offset
                blobs.append(data + b"\0" * (len(data) % 2))
                pos += len(blobs[-1])
        if not blobs:
            return
        main = struct.pack(order + "H", len(entries)) + b"".join(entries[t] for t in sorted(entries)) + next_ifd
        fh.write(b"\0" * pad + b"".join(blobs) + main)
        fh.seek(4)
        fh.write(struct.pack(order + "I", pos))


def _writable(head: bytes, group: int, tag: int, value: Any) -> bool:
    """Whether Pillow can write `tag` = `value` in a directory of `group` (a raw file's EXIF can
    hold values of types Pillow reads but does not write)."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    try:
        ifd = ImageFileDirectory_v2(head, group=group)
        ifd[tag] = value
        ifd.tobytes(8)
        return True
    except Exception:  # noqa: BLE001 - that one tag is left out
        return False


def _convert_depth(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """uint8 <-> uint16 by the usual factor 257 (rounded)."""
    if a.dtype == dtype:
        return a
    if dtype == np.uint8:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return a.astype(np.uint16) * np.uint16(257)
