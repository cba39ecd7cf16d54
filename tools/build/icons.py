"""The app's icon, drawn from one description (`ICON`) into icon.svg (the favicon) and, with
Pillow, into every PNG that manifest.webmanifest lists, at its size: each size is drawn
rather than scaled from another, so a small one stays sharp."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageColor, ImageDraw

from tools.build.dist import Build, BuildError, read_json
from tools.build.files import display

WEB_MANIFEST = "manifest.webmanifest"
ICON_SVG = "icon.svg"
# Pillow draws shapes without anti-aliasing: each PNG is drawn this many times larger and
# averaged down, which gives its edges 16 levels of coverage.
SUPERSAMPLE = 4
# A platform crops a maskable icon to any shape that holds the centre circle of 80% of its
# width, so everything but the background must stay inside it.
MASKABLE_SAFE_RADIUS = 0.4

Point = tuple[float, float]


@dataclass(frozen=True)
class Arc:
    """Part of a circle from angle `start` to `end` (degrees, 0 = +x, clockwise on screen
    since y points down; end > start)."""

    center: Point
    radius: float
    start: float
    end: float

    def at(self, degrees: float) -> Point:
        angle = math.radians(degrees)
        return (
            self.center[0] + self.radius * math.cos(angle),
            self.center[1] + self.radius * math.sin(angle),
        )


@dataclass(frozen=True)
class IconDesign:
    view: float
    """The side of the square the coordinates are in."""
    background: str
    corner: float
    """Corner radius of the background square ("any" icons; maskable ones fill the square)."""
    stroke: str
    stroke_width: float
    outline: tuple[Point | Arc, ...]
    """A closed path stroked with round joins: points joined by lines, and arcs."""


ICON = IconDesign(
    view=64,
    background="#2f6fde",
    corner=14,
    stroke="#ffffff",
    stroke_width=6,
    # A "P": up the stem, along the top, round the bowl, back to the stem, down its foot. It
    # stays inside the maskable safe zone.
    outline=((18, 44), (18, 20), Arc((32, 29), 9, -90, 90), (24, 38), (24, 44)),
)


@dataclass(frozen=True)
class ManifestIcon:
    src: str
    size: int
    maskable: bool


def _number(value: float) -> str:
    return f"{round(value, 3):g}"


def icon_svg(design: IconDesign) -> str:
    path: list[str] = []
    for item in design.outline:
        if isinstance(item, Arc):
            start, end = item.at(item.start), item.at(item.end)
            large = int(item.end - item.start > 180)
            path.append(f"L{_number(start[0])} {_number(start[1])}")
            path.append(
                f"A{_number(item.radius)} {_number(item.radius)} 0 {large} 1 "
                f"{_number(end[0])} {_number(end[1])}"
            )
        else:
            path.append(f"{'L' if path else 'M'}{_number(item[0])} {_number(item[1])}")
    view = _number(design.view)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {view} {view}">'
        f'<rect width="{view}" height="{view}" rx="{_number(design.corner)}" '
        f'fill="{design.background}"/><path d="{"".join(path)}Z" fill="none" '
        f'stroke="{design.stroke}" stroke-width="{_number(design.stroke_width)}" '
        'stroke-linejoin="round"/></svg>\n'
    )


def pieces(outline: tuple[Point | Arc, ...]) -> list[tuple[Point, Point] | Arc]:
    """The outline as segments and arcs, closed back to its first point."""
    first = outline[0]
    if isinstance(first, Arc):
        raise BuildError("an icon outline must start at a point")
    found: list[tuple[Point, Point] | Arc] = []
    here = first
    for item in (*outline[1:], first):
        if isinstance(item, Arc):
            found += [(here, item.at(item.start)), item]
            here = item.at(item.end)
        else:
            found.append((here, item))
            here = item
    return found


def colour(value: str) -> tuple[int, int, int]:
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        raise BuildError(f"icon colour {value!r}: expected #rrggbb")
    return ImageColor.getrgb(value)[:3]


def render_icon(design: IconDesign, size: int, maskable: bool) -> bytes:
    """The icon as an RGBA PNG of size x size pixels."""
    canvas = size * SUPERSAMPLE
    scale = canvas / design.view  # canvas pixels per design unit

    def px(*values: float) -> tuple[float, ...]:
        return tuple(value * scale for value in values)

    image = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    background, stroke = colour(design.background), colour(design.stroke)
    if maskable:
        draw.rectangle((0, 0, canvas, canvas), fill=background)
    else:
        box = (0, 0, canvas - 1, canvas - 1)
        draw.rounded_rectangle(box, radius=design.corner * scale, fill=background)
    width, half = round(design.stroke_width * scale), design.stroke_width / 2
    # A stroke with round joins: every piece at full width, and a disc on every joint.
    for piece in pieces(design.outline):
        if isinstance(piece, Arc):
            (x, y), outer = piece.center, piece.radius + half
            # Pillow's wide arc grows inwards from its box.
            bounds = px(x - outer, y - outer, x + outer, y + outer)
            draw.arc(bounds, piece.start, piece.end, fill=stroke, width=width)
            x, y = piece.at(piece.end)
        else:
            draw.line(px(*piece[0], *piece[1]), fill=stroke, width=width)
            x, y = piece[1]
        draw.ellipse(px(x - half, y - half, x + half, y + half), fill=stroke)
    # BOX averages each SUPERSAMPLE x SUPERSAMPLE block: exact coverage, no ringing.
    small = image.resize((size, size), Image.Resampling.BOX)
    png = io.BytesIO()
    small.save(png, format="PNG", optimize=True)
    return png.getvalue()


def manifest_icons(manifest: Any, path: Path) -> list[ManifestIcon]:
    """The PNG icons a web app manifest lists, refused with the reason if malformed."""
    where = display(path)
    if not isinstance(manifest, dict):
        raise BuildError(f"{where}: expected a JSON object")
    missing = [
        key
        for key in ("name", "short_name", "start_url", "scope", "display", "icons")
        if key not in manifest
    ]
    if missing:
        raise BuildError(f"{where}: missing {', '.join(missing)}")
    icons: list[ManifestIcon] = []
    for i, entry in enumerate(manifest["icons"] if isinstance(manifest["icons"], list) else [0]):
        entry = entry if isinstance(entry, dict) else {}
        src, sizes = entry.get("src"), entry.get("sizes")
        purpose = entry.get("purpose", "any")
        size = re.fullmatch(r"(\d+)x\1", sizes) if isinstance(sizes, str) else None
        if not (
            isinstance(src, str)
            and re.fullmatch(r"[\w-]+(/[\w-]+)*\.png", src)
            and size
            and entry.get("type") == "image/png"
            and purpose in ("any", "maskable")
        ):
            raise BuildError(
                f"{where}: icons[{i}] must be "
                '{"src": "<path>.png", "sizes": "<n>x<n>", "type": "image/png", '
                f'"purpose": "any" or "maskable"}}, got {entry or manifest["icons"]!r}'
            )
        icons.append(ManifestIcon(src, int(size.group(1)), purpose == "maskable"))
    return icons


def draw_icons(b: Build) -> str:
    path = b.cfg.web / "src" / WEB_MANIFEST
    icons = manifest_icons(read_json(path), path)
    b.add_bytes(icon_svg(ICON).encode(), ICON_SVG, "tools/build/icons.py (ICON)")
    for icon in icons:
        b.add_bytes(
            render_icon(ICON, icon.size, icon.maskable), icon.src, "tools/build/icons.py (ICON)"
        )
    drawn = ", ".join(f"{icon.src} ({'maskable' if icon.maskable else 'any'})" for icon in icons)
    return f"icons: {ICON_SVG}, {drawn}"
