"""The face and body diagram of the session form and record: its views, the
treatment areas drawn on each (SVG paths whose ids are the area codes of
`TreatmentArea`), and what a completed session's lines look like on it.

The drawing lives here, as data, so that the template that draws it
(templates/treatments/needle_map.html), the script that makes it tappable
(static/js/needle_map.js) and the checks on what is sent (which views show
an area, for a point tapped for a line) read the same shapes. Coordinates
are in each view's own units (its viewBox); a point is stored as a fraction
of the view's width and height (0 to 1, from the top left).
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING

from django.utils import translation
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from patients.models import TreatmentArea
from treatments.models import MapView, Technique, Unit

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise as StrOrPromise

    from treatments.models import CocktailLine, InjectionPoint

# Colours told apart on the diagram, one a line (css/needle_map.css: .nm-c0 ...).
LINE_COLOURS = 8


@dataclass(frozen=True)
class View:
    code: str
    label: StrOrPromise
    width: int
    height: int

    @property
    def viewbox(self) -> str:
        return f"0 0 {self.width} {self.height}"


@dataclass(frozen=True)
class Shape:
    """One treatment area as drawn on one view: its outline (`d`, both sides
    of the body in one path for the paired areas) and the places a point is
    put when added from the keyboard (the first also carries its label)."""

    view: str
    area: str
    d: str
    centres: tuple[tuple[int, int], ...]
    primary: bool = False  # the one shape of the area that carries its id
    label_place: tuple[int, int] | None = None  # where its amount is written; None: centres[0]

    @property
    def label(self) -> str:
        return _labels("area").get(self.area, self.area)

    @property
    def centre_list(self) -> str:
        """The centres as the script reads them: "x,y x,y"."""
        return " ".join(f"{x},{y}" for x, y in self.centres)


@dataclass(frozen=True)
class Decor:
    """A part of the drawing that is no area (head, hair, eyes): `above` the
    areas (lines drawn over them, which a tap passes through) or below."""

    d: str
    kind: str  # css/needle_map.css: nm-skin, nm-hair, nm-line
    above: bool = False


VIEWS: tuple[View, ...] = (
    View(MapView.FACE, _("Face"), 200, 240),
    View(MapView.BODY_FRONT, _("Body, front"), 220, 400),
    View(MapView.BODY_BACK, _("Body, back"), 220, 400),
    View(MapView.SCALP, _("Scalp"), 200, 224),
)
VIEW_BY_CODE = {view.code: view for view in VIEWS}


def _mirror(d: str, width: int) -> str:
    """The same outline on the other side of the body (x to width - x), for
    paths written as "M x y L x y ... Z" with x and y pairs only."""
    out: list[str] = []
    tokens = d.replace(",", " ").split()
    expect_x = True
    for token in tokens:
        if token.isalpha():
            out.append(token)
            expect_x = True
            continue
        if expect_x:
            out.append(str(width - int(token)))
        else:
            out.append(token)
        expect_x = not expect_x
    return " ".join(out)


def _pair(left: str, width: int) -> str:
    return f"{left} {_mirror(left, width)}"


_BODY = 220
_ARM = "M 68 82 L 50 88 L 38 150 L 28 228 L 48 232 L 58 156 L 66 128 Z"
_HAND = "M 28 232 L 48 236 L 50 262 L 42 276 L 26 266 Z"
_NECK = "M 97 48 L 123 48 L 125 74 L 95 74 Z"
_FOOT = "M 80 386 L 100 386 L 102 396 L 74 396 Z"

SHAPES: tuple[Shape, ...] = (
    # The face, seen from the front (under-eye over the face, the neck below it).
    Shape(MapView.FACE, "neck", "M 72 184 L 128 184 L 134 240 L 66 240 Z", ((100, 222),)),
    Shape(
        MapView.FACE,
        "face",
        "M 100 30 C 140 30 162 62 162 104 C 162 150 140 196 100 206 "
        "C 60 196 38 150 38 104 C 38 62 60 30 100 30 Z",
        ((100, 62), (68, 148), (132, 148), (100, 188)),
        # On the chin: the forehead and cheeks are where points usually go.
        label_place=(100, 190),
    ),
    Shape(
        MapView.FACE,
        "under_eye",
        "M 52 104 C 58 140 90 140 96 104 C 88 112 60 112 52 104 Z "
        "M 148 104 C 142 140 110 140 104 104 C 112 112 140 112 148 104 Z",
        ((74, 122), (126, 122)),
    ),
    # The body from the front: arms a little away from it.
    Shape(MapView.BODY_FRONT, "neck", _NECK, ((110, 62),)),
    Shape(
        MapView.BODY_FRONT,
        "decolletage",
        "M 96 74 L 124 74 L 150 82 L 152 120 L 68 120 L 70 82 Z",
        ((110, 98),),
    ),
    Shape(MapView.BODY_FRONT, "abdomen", "M 87 150 L 133 150 L 133 230 L 87 230 Z", ((110, 186),)),
    Shape(
        MapView.BODY_FRONT,
        "flanks",
        _pair("M 64 150 L 86 150 L 86 240 L 66 254 L 67 200 Z", _BODY),
        ((76, 200), (144, 200)),
    ),
    Shape(
        MapView.BODY_FRONT,
        "thighs",
        _pair("M 68 258 L 108 258 L 104 322 L 74 322 Z", _BODY),
        ((88, 290), (132, 290)),
    ),
    Shape(
        MapView.BODY_FRONT,
        "legs",
        _pair("M 74 326 L 104 326 L 98 384 L 80 384 Z", _BODY),
        ((89, 354), (131, 354)),
    ),
    Shape(MapView.BODY_FRONT, "arms", _pair(_ARM, _BODY), ((48, 150), (172, 150))),
    Shape(MapView.BODY_FRONT, "hands", _pair(_HAND, _BODY), ((38, 254), (182, 254))),
    # The body from behind.
    Shape(MapView.BODY_BACK, "neck", _NECK, ((110, 62),)),
    Shape(
        MapView.BODY_BACK,
        "flanks",
        _pair("M 64 160 L 88 168 L 88 222 L 66 222 L 65 190 Z", _BODY),
        ((76, 196), (144, 196)),
    ),
    Shape(
        MapView.BODY_BACK,
        "buttocks",
        _pair("M 66 224 L 109 224 L 109 276 L 70 276 L 65 250 Z", _BODY),
        ((88, 250), (132, 250)),
    ),
    Shape(
        MapView.BODY_BACK,
        "thighs",
        _pair("M 70 280 L 108 280 L 104 330 L 74 330 Z", _BODY),
        ((89, 305), (131, 305)),
    ),
    Shape(
        MapView.BODY_BACK,
        "legs",
        _pair("M 74 334 L 104 334 L 98 384 L 80 384 Z", _BODY),
        ((89, 358), (131, 358)),
    ),
    Shape(MapView.BODY_BACK, "arms", _pair(_ARM, _BODY), ((48, 150), (172, 150))),
    Shape(MapView.BODY_BACK, "hands", _pair(_HAND, _BODY), ((38, 254), (182, 254))),
    # The top of the head, the face at the top.
    Shape(
        MapView.SCALP,
        "scalp",
        "M 100 24 C 150 24 166 70 166 116 C 166 170 136 206 100 206 "
        "C 64 206 34 170 34 116 C 34 70 50 24 100 24 Z",
        ((100, 112), (100, 60), (100, 164), (64, 92), (136, 92)),
    ),
)

_TORSO = (
    "M 95 72 L 125 72 L 152 80 L 156 150 L 152 226 L 156 256 L 64 256 L 68 226 L 64 150 L 68 80 Z"
)
DECOR: dict[str, tuple[Decor, ...]] = {
    MapView.FACE: (
        Decor(
            "M 38 104 C 30 40 70 8 100 8 C 130 8 170 40 162 104 "
            "C 158 70 140 44 100 42 C 60 44 42 70 38 104 Z",
            "nm-hair",
            above=True,
        ),
        Decor("M 40 92 C 24 88 24 128 42 134 Z", "nm-skin"),
        Decor("M 160 92 C 176 88 176 128 158 134 Z", "nm-skin"),
        Decor("M 62 98 C 68 92 80 92 86 98 C 80 103 68 103 62 98 Z", "nm-eye", above=True),
        Decor("M 114 98 C 120 92 132 92 138 98 C 132 103 120 103 114 98 Z", "nm-eye", above=True),
        Decor("M 58 84 Q 74 76 90 84", "nm-line", above=True),
        Decor("M 110 84 Q 126 76 142 84", "nm-line", above=True),
        Decor("M 100 106 L 93 140 Q 100 146 107 140", "nm-line", above=True),
        Decor("M 82 164 Q 100 174 118 164 Q 100 158 82 164 Z", "nm-line", above=True),
    ),
    MapView.BODY_FRONT: (
        Decor(_TORSO, "nm-skin"),
        Decor(_pair(_FOOT, _BODY), "nm-skin"),
        Decor(
            "M 110 4 C 124 4 130 16 130 28 C 130 42 122 52 110 52 "
            "C 98 52 90 42 90 28 C 90 16 96 4 110 4 Z",
            "nm-skin",
            above=True,
        ),
        Decor("M 110 194 m -2 0 a 2 2 0 1 0 4 0 a 2 2 0 1 0 -4 0", "nm-line", above=True),
    ),
    MapView.BODY_BACK: (
        Decor(_TORSO, "nm-skin"),
        Decor(_pair(_FOOT, _BODY), "nm-skin"),
        Decor(
            "M 110 4 C 124 4 130 16 130 28 C 130 42 122 52 110 52 "
            "C 98 52 90 42 90 28 C 90 16 96 4 110 4 Z",
            "nm-hair",
            above=True,
        ),
        Decor("M 110 80 L 110 222", "nm-line", above=True),
    ),
    MapView.SCALP: (
        Decor("M 36 100 C 22 96 22 136 38 138 Z", "nm-skin"),
        Decor("M 164 100 C 178 96 178 136 162 138 Z", "nm-skin"),
        Decor("M 92 26 L 100 12 L 108 26 Z", "nm-skin"),
        Decor("M 100 34 L 100 120", "nm-line", above=True),
        Decor("M 100 150 m -7 0 a 7 7 0 1 0 14 0 a 7 7 0 1 0 -14 0", "nm-line", above=True),
    ),
}


def _mark_primary(shapes: Iterable[Shape]) -> tuple[Shape, ...]:
    seen: set[str] = set()
    marked = []
    for shape in shapes:
        marked.append(
            Shape(
                shape.view,
                shape.area,
                shape.d,
                shape.centres,
                primary=shape.area not in seen,
                label_place=shape.label_place,
            )
        )
        seen.add(shape.area)
    return tuple(marked)


SHAPES = _mark_primary(SHAPES)


# The techniques given needle by needle, whose points are tapped on the
# diagram (static/js/needle_map.js has the same list); nappage and linear
# threading cover an area, shaded, never tapped.
POINT_TECHNIQUES = frozenset({Technique.PAPULE.value, Technique.POINT_BY_POINT.value})


def technique_takes_points(technique: str) -> bool:
    """Whether a line given with `technique` (a `Technique` code) may carry
    points on the diagram: papules and point by point only."""
    return technique in POINT_TECHNIQUES


# How far outside an area's outline a point may fall, in the view's units
# (the views are 200 to 220 wide): a finger's tap on the edge still counts.
EDGE_TOLERANCE = 4.0


@functools.cache
def _outline(d: str) -> tuple[tuple[tuple[float, float], ...], ...]:
    """The closed polygons of an outline written with M, L, C and Z (absolute
    coordinates), each cubic curve flattened into 16 straight pieces."""
    tokens = d.replace(",", " ").split()
    polygons: list[tuple[tuple[float, float], ...]] = []
    current: list[tuple[float, float]] = []
    index = 0

    def numbers(count: int) -> list[float]:
        nonlocal index
        values = [float(tokens[index + i]) for i in range(count)]
        index += count
        return values

    command = ""
    while index < len(tokens):
        if tokens[index].isalpha():
            command = tokens[index]
            index += 1
            if command == "Z":
                if current:
                    polygons.append(tuple(current))
                current = []
                continue
        if command == "M":
            if current:
                polygons.append(tuple(current))
            current = [tuple(numbers(2))]  # type: ignore[list-item]
            command = "L"  # further pairs after M are lines
        elif command == "L":
            x, y = numbers(2)
            current.append((x, y))
        elif command == "C":
            x1, y1, x2, y2, x, y = numbers(6)
            x0, y0 = current[-1]
            for step in range(1, 17):
                t = step / 16
                u = 1 - t
                current.append(
                    (
                        u**3 * x0 + 3 * u * u * t * x1 + 3 * u * t * t * x2 + t**3 * x,
                        u**3 * y0 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t**3 * y,
                    )
                )
        else:
            raise ValueError(f"Outline command {command!r} is not read here: {d[:40]}")
    if current:
        polygons.append(tuple(current))
    return tuple(polygons)


def _inside(polygons: tuple[tuple[tuple[float, float], ...], ...], x: float, y: float) -> bool:
    """Whether (x, y) is inside the polygons (even-odd) or within
    EDGE_TOLERANCE of an edge."""
    crossings = 0
    for polygon in polygons:
        for (ax, ay), (bx, by) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
            if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
                crossings += 1
            dx, dy = bx - ax, by - ay
            length = dx * dx + dy * dy
            t = 0.0 if length == 0 else max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / length))
            if math.hypot(x - (ax + t * dx), y - (ay + t * dy)) <= EDGE_TOLERANCE:
                return True
    return crossings % 2 == 1


def point_in_area(area: str, view: str, x: float | Decimal, y: float | Decimal) -> bool:
    """Whether a point tapped on `view` at (`x`, `y`), fractions 0..1 of the
    view's width and height, lies on `area` (a `TreatmentArea` code) as the
    diagram draws it there, give or take EDGE_TOLERANCE. False for a view
    that does not show the area."""
    drawn = VIEW_BY_CODE.get(view)
    if drawn is None:
        return False
    at_x, at_y = float(x) * drawn.width, float(y) * drawn.height
    return any(
        _inside(_outline(shape.d), at_x, at_y)
        for shape in SHAPES
        if shape.area == area and shape.view == view
    )


def views_of_area(area: str) -> tuple[str, ...]:
    """The views that show `area` (a `TreatmentArea` code), the first the
    one it is best seen on; () for an unknown code."""
    return tuple(shape.view for shape in SHAPES if shape.area == area)


AREA_VIEWS: dict[str, tuple[str, ...]] = {area: views_of_area(area) for area in TreatmentArea}


@dataclass(frozen=True)
class ViewDrawn:
    """One view as a template draws it: its decor, its areas (each with
    the colour of the line that treated it, if one did), the points on it."""

    view: View
    below: tuple[Decor, ...]
    above: tuple[Decor, ...]
    shapes: list[ShapeDrawn]
    points: list[PointDrawn] = field(default_factory=list)

    @property
    def code(self) -> str:
        return self.view.code

    @property
    def label(self) -> str:
        return _labels("view")[self.view.code]

    @property
    def below_markup(self) -> SafeString:
        """The decor under the areas, as SVG (the same for every drawing of the view)."""
        return _decor_markup(self.code, above=False)

    @property
    def above_markup(self) -> SafeString:
        return _decor_markup(self.code, above=True)

    # A record's or the timeline's picture, as SVG built here rather than in
    # the template: a page of the timeline draws some sixty views, and the
    # template's loops were most of its cost (each value escaped all the same).

    @property
    def shapes_markup(self) -> SafeString:
        """Each area, shaded in its line's colour if treated."""
        return format_html_join(
            "",
            '<path class="nm-area{}" d="{}" data-area="{}"/>',
            (
                (
                    "" if drawn.colour is None else f" is-treated nm-c{drawn.colour}",
                    drawn.shape.d,
                    drawn.shape.area,
                )
                for drawn in self.shapes
            ),
        )

    @property
    def points_markup(self) -> SafeString:
        return format_html_join(
            "",
            '<circle class="nm-point nm-c{}" cx="{}" cy="{}" r="3.5"/>',
            ((p.colour, f"{p.cx:g}", f"{p.cy:g}") for p in self.points),
        )

    @property
    def labels_markup(self) -> SafeString:
        """The amount given in each treated area, at its place."""
        return format_html_join(
            "",
            '<text class="nm-label" x="{}" y="{}" text-anchor="middle" '
            'dominant-baseline="middle">{}</text>',
            (
                (drawn.label_at[0], drawn.label_at[1], drawn.amount)
                for drawn in self.shapes
                if drawn.amount
            ),
        )


_DECOR_MARKUP: dict[tuple[str, bool], SafeString] = {}


def _decor_markup(view: str, *, above: bool) -> SafeString:
    """A view's decor as SVG paths, built once: a page of the timeline draws
    the same heads and torsos sixty times."""
    key = (view, above)
    if key not in _DECOR_MARKUP:
        _DECOR_MARKUP[key] = format_html_join(
            "",
            '<path class="nm-decor {}" d="{}"/>',
            ((d.kind, d.d) for d in DECOR[view] if d.above == above),
        )
    return _DECOR_MARKUP[key]


@dataclass(frozen=True)
class ShapeDrawn:
    shape: Shape
    colour: int | None = None  # the first line given to this area; None: untreated
    amount: str = ""  # "2.50 mL", shown in the area on the record

    @property
    def label_at(self) -> tuple[int, int]:
        return self.shape.label_place or self.shape.centres[0]


@dataclass(frozen=True)
class PointDrawn:
    cx: float
    cy: float
    colour: int


@dataclass
class AreaGiven:
    """What one area received: each product's amount, the totals per unit
    and the number of points tapped for it."""

    area: str
    label: str
    products: list[tuple[str, Decimal, str]] = field(default_factory=list)
    totals: dict[str, Decimal] = field(default_factory=dict)
    points: int = 0
    colour: int = 0

    @property
    def total_text(self) -> str:
        return " + ".join(f"{amount:.2f} {unit}" for unit, amount in self.totals.items())


@dataclass(frozen=True)
class NeedleMap:
    views: list[ViewDrawn]
    areas: list[AreaGiven]
    lines: list[tuple[CocktailLine, int]]  # each line with its colour on the diagram

    @cached_property
    def summary(self) -> str:
        """The diagram in words, for a screen reader: "Face 2.50 mL, 12 points; ..."."""
        parts = []
        points = str(_("points"))
        for area in self.areas:
            text = f"{area.label} {area.total_text}"
            if area.points:
                text += f", {area.points} {points}"
            parts.append(text)
        return "; ".join(parts)


def view_drawn(view: View) -> ViewDrawn:
    """A view with nothing treated on it (the session form's, which the script shades)."""
    return ViewDrawn(
        view=view,
        below=tuple(d for d in DECOR[view.code] if not d.above),
        above=tuple(d for d in DECOR[view.code] if d.above),
        shapes=[ShapeDrawn(shape) for shape in SHAPES if shape.view == view.code],
    )


def blank_map() -> list[ViewDrawn]:
    """Every view, nothing treated: what the session form draws."""
    return [view_drawn(view) for view in VIEWS]


_LABELS: dict[tuple[str, str], dict[str, str]] = {}


def _labels(kind: str) -> dict[str, str]:
    """The areas' ("area"), units' ("unit") or views' ("view") names in the
    language of the page, translated once: a page of the timeline names
    them hundreds of times."""
    key = (translation.get_language() or "", kind)
    if key not in _LABELS:
        pairs: list[tuple[str, object]]
        if kind == "area":
            pairs = list(TreatmentArea.choices)
        elif kind == "unit":
            pairs = list(Unit.choices)
        else:
            pairs = [(v.code, v.label) for v in VIEWS]
        _LABELS[key] = {code: str(label) for code, label in pairs}
    return _LABELS[key]


def _unit_label(unit: str) -> str:
    return _labels("unit").get(unit, unit)


def needle_map_of(
    lines: Sequence[CocktailLine], points: Mapping[int, Sequence[InjectionPoint]] | None = None
) -> NeedleMap:
    """A completed session's lines on the diagram: the views on which
    something was given (a line's points' views, or its area's own view
    when it has none), each area shaded in the colour of the first line
    given to it with the amount in it, the points in their line's colour;
    and per area, what was given there. `lines` in the record's order, with
    `batch.product` loaded; `points` by line id (None: `line.points.all()`,
    prefetched). No query when both are loaded."""
    wanted: dict[str, None] = {}
    colour_of_area: dict[str, int] = {}
    given: dict[str, AreaGiven] = {}
    drawn_points: dict[str, list[PointDrawn]] = defaultdict(list)
    for index, line in enumerate(lines):
        colour = index % LINE_COLOURS
        line_points = list(line.points.all()) if points is None else list(points.get(line.pk, []))
        area = given.setdefault(
            line.area,
            AreaGiven(
                area=line.area, label=_labels("area").get(line.area, line.area), colour=colour
            ),
        )
        colour_of_area.setdefault(line.area, colour)
        unit = _unit_label(line.unit)
        area.products.append((line.batch.product.name, line.amount, unit))
        area.totals[unit] = area.totals.get(unit, Decimal(0)) + line.amount
        area.points += len(line_points)
        for point in line_points:
            view = VIEW_BY_CODE.get(point.view)
            if view is None:
                continue
            wanted[point.view] = None
            drawn_points[point.view].append(
                PointDrawn(
                    cx=round(float(point.x) * view.width, 1),
                    cy=round(float(point.y) * view.height, 1),
                    colour=colour,
                )
            )
        if not line_points and AREA_VIEWS.get(line.area):
            wanted[AREA_VIEWS[line.area][0]] = None
    views = []
    labelled: set[str] = set()
    for view in VIEWS:
        if view.code not in wanted:
            continue
        drawn = view_drawn(view)
        shapes = []
        for shape_drawn in drawn.shapes:
            area_code = shape_drawn.shape.area
            if area_code in colour_of_area:
                amount = ""
                if area_code not in labelled:
                    labelled.add(area_code)
                    amount = given[area_code].total_text
                shapes.append(ShapeDrawn(shape_drawn.shape, colour_of_area[area_code], amount))
            else:
                shapes.append(shape_drawn)
        views.append(
            ViewDrawn(
                view=view,
                below=drawn.below,
                above=drawn.above,
                shapes=shapes,
                points=drawn_points[view.code],
            )
        )
    order = {area: n for n, area in enumerate(TreatmentArea.values)}
    areas = sorted(given.values(), key=lambda a: order.get(a.area, len(order)))
    coloured = [(line, index % LINE_COLOURS) for index, line in enumerate(lines)]
    return NeedleMap(views=views, areas=areas, lines=coloured)
