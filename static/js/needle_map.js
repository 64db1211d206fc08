// The face and body diagram of the session form, and its cocktail lines.
//
// One line at a time is "being marked": a tap on an area (a finger, a pen or
// a mouse: pointer events; or Enter or Space on a focused area) makes it that
// line's area, through the line's own area select; in "points" mode each tap
// adds an injection point to the line instead, kept in its hidden "points"
// field as JSON: [[view, x, y], ...], x and y fractions of the view's width
// and height. From the keyboard a point goes near the area's centre.
// Every line's area is shaded in its colour, and its points drawn.
//
// Lines are added ("Add a line": how the line above was given) and copied in
// place. Without this script the diagram stays hidden, the points field is
// never sent (it is disabled in the page), and those two buttons send the
// form back with one more line.
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var COLOURS = 8;
  // Techniques given point by point: once the area is chosen, taps add points.
  var POINT_TECHNIQUES = ["papule", "point"];
  // Fields a copied line takes from its source.
  var EVERY_FIELD = ["product", "batch", "amount", "unit", "area", "technique", "depth_mm", "needle_gauge", "device", "points"];

  var panel = document.querySelector("[data-needle-map]");
  if (!panel) return;
  var form = panel.closest("form");
  var linesBox = form.querySelector("[data-lines]");
  var total = form.querySelector('input[name$="-TOTAL_FORMS"][name^="lines"]');
  var template = document.getElementById("cocktail-line-template");
  var addButton = form.querySelector("[data-line-add]");
  var statusText = panel.querySelector("[data-map-status]");
  var live = panel.querySelector("[data-map-live]");
  var maxPoints = parseInt(panel.getAttribute("data-max-points"), 10) || 200;
  var maxLines = parseInt(panel.getAttribute("data-max-lines"), 10) || 20;
  var boxes = Array.prototype.slice.call(panel.querySelectorAll("[data-view-box]"));
  var viewButtons = Array.prototype.slice.call(panel.querySelectorAll("[data-map-view]"));
  var modeInputs = Array.prototype.slice.call(panel.querySelectorAll("[data-map-mode]"));

  var active = 0;
  var mode = "area";
  var shown = boxes.length ? boxes[0].getAttribute("data-view-box") : "";
  var keyboardTurns = {};

  // Which views show each area, and the area's name, read from the drawing.
  var areaViews = {};
  var areaNames = {};
  boxes.forEach(function (box) {
    box.querySelectorAll(".nm-area").forEach(function (shape) {
      var area = shape.getAttribute("data-area");
      (areaViews[area] = areaViews[area] || []).push(box.getAttribute("data-view-box"));
      areaNames[area] = areaNames[area] || shape.getAttribute("aria-label");
    });
  });
  // What the page says, in its own language (the template's data-map-words).
  var words = {};
  panel.querySelectorAll("[data-map-words] [data-word]").forEach(function (span) {
    words[span.getAttribute("data-word")] = span.textContent;
  });
  function word(key, values) {
    return (words[key] || key).replace(/\{(\w+)\}/g, function (whole, name) {
      return values && name in values ? String(values[name]) : whole;
    });
  }
  var viewNames = {};
  viewButtons.forEach(function (button) {
    viewNames[button.getAttribute("data-map-view")] = button.textContent.trim();
  });

  // --- Lines --------------------------------------------------------------------------

  function lines() {
    return Array.prototype.slice.call(linesBox.querySelectorAll(".cocktail-line"));
  }
  function field(line, name) {
    return line.querySelector('[name$="-' + name + '"]');
  }
  function leftOut(line) {
    var box = field(line, "DELETE");
    return !!(box && box.checked);
  }
  function areaOf(line) {
    var select = field(line, "area");
    return select ? select.value : "";
  }
  function techniqueOf(line) {
    var select = field(line, "technique");
    return select ? select.value : "";
  }
  function validPoint(point) {
    return Array.isArray(point) && point.length === 3 && typeof point[0] === "string" &&
      typeof point[1] === "number" && typeof point[2] === "number";
  }
  function pointsOf(line) {
    var input = field(line, "points");
    if (!input || !input.value) return [];
    try {
      var parsed = JSON.parse(input.value);
      return Array.isArray(parsed) ? parsed.filter(validPoint) : [];
    } catch (error) {
      return [];
    }
  }
  function setPoints(line, points) {
    var input = field(line, "points");
    if (input) input.value = points.length ? JSON.stringify(points) : "";
  }
  function lineName(line) {
    var name = line.querySelector("[data-line-name]");
    return name ? name.textContent.trim() : "";
  }
  function productOf(line) {
    var select = field(line, "product");
    if (!select || !select.value || select.selectedIndex < 0) return "";
    return select.options[select.selectedIndex].text;
  }
  // A line's area chosen or cleared on the diagram: js/session_form.js
  // follows the areas treated (the cautions shown for them).
  function areasChanged() {
    form.dispatchEvent(new CustomEvent("cocktail:areas"));
  }
  function activeLine() {
    return lines()[active] || null;
  }

  // --- Saying what happened -------------------------------------------------------------

  var sayTimer = null;
  function say(text) {
    live.textContent = "";
    window.clearTimeout(sayTimer);
    sayTimer = window.setTimeout(function () { live.textContent = text; }, 60);
  }
  function countText(count) {
    if (!count) return "";
    return count === 1 ? word("point_one") : word("point_other", { count: count });
  }
  function areaName(area) {
    return areaNames[area] || area;
  }

  // --- Drawing --------------------------------------------------------------------------

  function colourClass(index) {
    return "nm-c" + (index % COLOURS);
  }
  function setColour(element, index) {
    for (var c = 0; c < COLOURS; c++) element.classList.remove("nm-c" + c);
    if (index !== null) element.classList.add(colourClass(index));
  }

  function render() {
    var all = lines();
    if (active >= all.length) active = all.length - 1;
    if (active < 0) active = 0;
    var firstLineOf = {};
    all.forEach(function (line, index) {
      setColour(line, index);
      line.classList.toggle("is-marking", index === active);
      var select = line.querySelector("[data-map-select]");
      if (select) select.setAttribute("aria-pressed", index === active ? "true" : "false");
      var count = line.querySelector("[data-map-count]");
      if (count) count.textContent = countText(pointsOf(line).length);
      var area = areaOf(line);
      if (area && !leftOut(line) && !(area in firstLineOf)) firstLineOf[area] = index;
    });
    var line = activeLine();
    var activeArea = line && !leftOut(line) ? areaOf(line) : "";
    panel.querySelectorAll(".nm-area").forEach(function (shape) {
      var area = shape.getAttribute("data-area");
      var treated = area in firstLineOf;
      shape.classList.toggle("is-treated", treated);
      setColour(shape, treated ? (area === activeArea ? active : firstLineOf[area]) : null);
      shape.classList.toggle("is-active", area === activeArea);
      shape.setAttribute("aria-pressed", area === activeArea ? "true" : "false");
    });
    boxes.forEach(function (box) {
      var layer = box.querySelector(".nm-points");
      while (layer.firstChild) layer.removeChild(layer.firstChild);
    });
    all.forEach(function (each, index) {
      if (leftOut(each)) return;
      pointsOf(each).forEach(function (point) {
        var box = boxOf(point[0]);
        if (!box) return;
        var size = box.querySelector("svg").viewBox.baseVal;
        var dot = document.createElementNS(SVG_NS, "circle");
        dot.setAttribute("cx", String(point[1] * size.width));
        dot.setAttribute("cy", String(point[2] * size.height));
        dot.setAttribute("r", index === active ? "4.5" : "3.5");
        dot.setAttribute("class", "nm-point " + colourClass(index) + (index === active ? "" : " is-dimmed"));
        box.querySelector(".nm-points").appendChild(dot);
      });
    });
    var max = parseInt(total.value, 10) >= maxLines;
    if (addButton) addButton.disabled = max;
    statusText.textContent = line ? statusOf(line) : "";
  }

  function statusOf(line) {
    var name = lineName(line);
    var product = productOf(line);
    if (product) name += " (" + product + ")";
    var area = areaOf(line);
    var where = area ? areaName(area) : word("no_area");
    var count = pointsOf(line).length;
    if (count) where += ", " + countText(count);
    if (leftOut(line)) where += " (" + word("left_out") + ")";
    return word("marking", { line: name, area: where });
  }

  function boxOf(view) {
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].getAttribute("data-view-box") === view) return boxes[i];
    }
    return null;
  }

  function show(view) {
    if (!boxOf(view)) return;
    shown = view;
    boxes.forEach(function (box) { box.hidden = box.getAttribute("data-view-box") !== view; });
    viewButtons.forEach(function (button) {
      button.setAttribute("aria-pressed", button.getAttribute("data-map-view") === view ? "true" : "false");
    });
  }

  function setMode(next) {
    mode = next;
    modeInputs.forEach(function (input) { input.checked = input.value === next; });
  }

  // The line to mark: its area's view shown, and the mode its technique suits.
  function mark(index, announce) {
    active = index;
    var line = activeLine();
    if (!line) return;
    var area = areaOf(line);
    if (area && areaViews[area] && areaViews[area].indexOf(shown) < 0) show(areaViews[area][0]);
    setMode(area && POINT_TECHNIQUES.indexOf(techniqueOf(line)) >= 0 ? "points" : "area");
    render();
    if (announce) say(statusOf(line));
  }

  // --- Areas and points -----------------------------------------------------------------

  // A new area for a line: its points on a view that does not show it go.
  // Points were tapped for the area chosen before: another area, none of them
  // holds (the server refuses points outside the line's area).
  function areaChanged(line) {
    var dropped = pointsOf(line).length;
    if (dropped) setPoints(line, []);
    return dropped;
  }

  function chooseArea(line, area) {
    var select = field(line, "area");
    if (!select) return;
    if (areaOf(line) === area) {
      select.value = "";
      areasChanged();
      render();
      say(word("area_unmarked", { line: lineName(line), area: areaName(area) }));
      return;
    }
    select.value = area;
    areasChanged();
    var dropped = areaChanged(line);
    var text = word("area_chosen", { line: lineName(line), area: areaName(area) });
    if (dropped) text += " " + word("dropped", { count: countText(dropped) });
    if (POINT_TECHNIQUES.indexOf(techniqueOf(line)) >= 0) {
      setMode("points");
      text += " " + word("now_points");
    }
    render();
    say(text);
  }

  function addPoint(line, view, area, x, y) {
    var current = areaOf(line);
    if (!current) {
      if (!area) {
        say(word("area_first", { line: lineName(line) }));
        return;
      }
      field(line, "area").value = area;
      areaChanged(line);
      current = area;
    }
    if ((areaViews[current] || []).indexOf(view) < 0) {
      say(word("wrong_view", {
        line: lineName(line),
        area: areaName(current),
        view: viewNames[(areaViews[current] || [""])[0]] || "",
      }));
      return;
    }
    var points = pointsOf(line);
    if (points.length >= maxPoints) {
      say(word("most_points", { max: maxPoints }));
      return;
    }
    points.push([view, x, y]);
    setPoints(line, points);
    render();
    say(word("points_now", { line: lineName(line), count: countText(points.length) }));
  }

  function tap(view, area, x, y) {
    var line = activeLine();
    if (!line) return;
    if (leftOut(line)) {
      say(word("is_left_out", { line: lineName(line) }));
      return;
    }
    if (mode === "points") addPoint(line, view, area, x, y);
    else if (area) chooseArea(line, area);
  }

  function round(value) {
    return Math.round(value * 10000) / 10000;
  }

  // A tap's place in the view, as fractions of its size; null outside it.
  function placeOf(svg, clientX, clientY) {
    var matrix = svg.getScreenCTM();
    if (!matrix) return null;
    var point = svg.createSVGPoint();
    point.x = clientX;
    point.y = clientY;
    var inView = point.matrixTransform(matrix.inverse());
    var size = svg.viewBox.baseVal;
    var x = inView.x / size.width;
    var y = inView.y / size.height;
    if (x < 0 || x > 1 || y < 0 || y > 1) return null;
    return [round(x), round(y)];
  }

  // From the keyboard: near one of the area's centres, a little further out
  // each time, so that points added one after the other stay apart.
  function keyboardPlace(shape, view) {
    var centres = (shape.getAttribute("data-centres") || "").split(" ").map(function (pair) {
      return pair.split(",").map(Number);
    }).filter(function (pair) { return pair.length === 2 && !isNaN(pair[0]); });
    if (!centres.length) return null;
    var key = active + ":" + view + ":" + shape.getAttribute("data-area");
    var turn = keyboardTurns[key] || 0;
    keyboardTurns[key] = turn + 1;
    var centre = centres[turn % centres.length];
    var ring = Math.floor(turn / centres.length);
    var angle = ring * 2.39996;
    var reach = ring ? 3 + 3 * Math.sqrt(ring) : 0;
    var size = shape.ownerSVGElement.viewBox.baseVal;
    return [
      round(Math.min(1, Math.max(0, (centre[0] + reach * Math.cos(angle)) / size.width))),
      round(Math.min(1, Math.max(0, (centre[1] + reach * Math.sin(angle)) / size.height))),
    ];
  }

  boxes.forEach(function (box) {
    var svg = box.querySelector("svg");
    var view = box.getAttribute("data-view-box");
    var down = null;
    svg.addEventListener("pointerdown", function (event) {
      if (event.pointerType === "mouse" && event.button !== 0) return;
      down = { id: event.pointerId, x: event.clientX, y: event.clientY, target: event.target };
    });
    svg.addEventListener("pointercancel", function () { down = null; });
    svg.addEventListener("pointerup", function (event) {
      if (!down || down.id !== event.pointerId) return;
      var moved = Math.abs(event.clientX - down.x) + Math.abs(event.clientY - down.y);
      var target = down.target;
      down = null;
      // A finger that moved was scrolling the page, not tapping.
      if (moved > 14) return;
      var place = placeOf(svg, event.clientX, event.clientY);
      if (!place) return;
      var shape = target && target.closest ? target.closest(".nm-area") : null;
      tap(view, shape ? shape.getAttribute("data-area") : "", place[0], place[1]);
    });
    svg.addEventListener("keydown", function (event) {
      var shape = event.target.closest ? event.target.closest(".nm-area") : null;
      if (!shape || (event.key !== "Enter" && event.key !== " ")) return;
      event.preventDefault();
      var area = shape.getAttribute("data-area");
      if (mode === "points") {
        var line = activeLine();
        if (line && !areaOf(line) && !leftOut(line)) {
          chooseArea(line, area);
          setMode("points");
        }
        var place = keyboardPlace(shape, view);
        if (place) tap(view, area, place[0], place[1]);
      } else {
        tap(view, area, 0, 0);
      }
    });
  });

  viewButtons.forEach(function (button) {
    button.addEventListener("click", function () { show(button.getAttribute("data-map-view")); });
  });
  modeInputs.forEach(function (input) {
    input.addEventListener("change", function () {
      if (input.checked) setMode(input.value);
    });
  });

  panel.querySelector("[data-map-undo]").addEventListener("click", function () {
    var line = activeLine();
    if (!line) return;
    var points = pointsOf(line);
    if (!points.length) {
      say(word("undone", { line: lineName(line), count: word("no_points") }));
      return;
    }
    points.pop();
    setPoints(line, points);
    render();
    say(word("undone", { line: lineName(line), count: countText(points.length) || word("no_points") }));
  });
  panel.querySelector("[data-map-clear-line]").addEventListener("click", function () {
    var line = activeLine();
    if (!line) return;
    setPoints(line, []);
    keyboardTurns = {};
    render();
    say(word("cleared_line", { line: lineName(line) }));
  });
  panel.querySelector("[data-map-clear]").addEventListener("click", function () {
    lines().forEach(function (line) {
      setPoints(line, []);
      var select = field(line, "area");
      if (select) select.value = "";
    });
    areasChanged();
    keyboardTurns = {};
    setMode("area");
    render();
    say(word("cleared_map"));
  });

  // --- Adding and copying lines ---------------------------------------------------------

  function renumber() {
    lines().forEach(function (line, index) {
      var name = line.querySelector("[data-line-name]");
      if (name) name.textContent = word("line", { number: index + 1 });
    });
  }

  function blankLine(index) {
    var fragment = template.content.cloneNode(true);
    var line = fragment.querySelector(".cocktail-line");
    var elements = [line].concat(Array.prototype.slice.call(line.querySelectorAll("*")));
    elements.forEach(function (element) {
      Array.prototype.slice.call(element.attributes).forEach(function (attribute) {
        if (attribute.value.indexOf("__prefix__") >= 0) {
          element.setAttribute(attribute.name, attribute.value.split("__prefix__").join(String(index)));
        }
      });
    });
    line.setAttribute("data-testid", "cocktail-line");
    setUpLine(line);
    return line;
  }

  // A new line (source null) as the template gives it, or a copy of `source`.
  function addLine(source) {
    var count = parseInt(total.value, 10);
    if (isNaN(count) || count >= maxLines) {
      say(word("most_lines", { max: maxLines }));
      return null;
    }
    var line = blankLine(count);
    linesBox.appendChild(line);
    total.value = String(count + 1);
    renumber();
    if (source) {
      // Not its points: each needle is recorded once, on the line that gave it.
      EVERY_FIELD.forEach(function (name) {
        var from = field(source, name);
        var to = field(line, name);
        if (from && to && name !== "points") to.value = from.value;
      });
    }
    mark(lines().indexOf(line), false);
    return line;
  }

  if (addButton) {
    addButton.addEventListener("click", function (event) {
      event.preventDefault();
      // A new line starts as the page's template does: how it is given from
      // the patient's last session on the protocol, or the protocol's own.
      var line = addLine(null);
      if (!line) return;
      say(word("added", { line: lineName(line) }));
      field(line, "product").focus();
    });
  }

  linesBox.addEventListener("click", function (event) {
    var button = event.target.closest("[data-line-copy], [data-map-select]");
    if (!button) return;
    event.preventDefault();
    var source = button.closest(".cocktail-line");
    var index = lines().indexOf(source);
    if (button.hasAttribute("data-map-select")) {
      mark(index, true);
      return;
    }
    var line = addLine(source);
    if (!line) return;
    say(word("copied", { from: lineName(source), line: lineName(line) }));
    field(line, "amount").focus();
  });

  linesBox.addEventListener("focusin", function (event) {
    var line = event.target.closest(".cocktail-line");
    var index = lines().indexOf(line);
    if (line && index !== active) mark(index, false);
  });

  linesBox.addEventListener("change", function (event) {
    var line = event.target.closest(".cocktail-line");
    if (!line) return;
    var isActive = lines().indexOf(line) === active;
    if (isActive && /-technique$/.test(event.target.name || "")) {
      // Papules or point by point on a line whose area is chosen: taps add points.
      var pointwise = POINT_TECHNIQUES.indexOf(techniqueOf(line)) >= 0;
      if (pointwise && areaOf(line) && mode !== "points") {
        setMode("points");
        say(word("now_points"));
      } else if (!pointwise && mode === "points") {
        setMode("area");
      }
    }
    if (/-area$/.test(event.target.name || "")) {
      var dropped = areaChanged(line);
      if (dropped) say(word("dropped", { count: countText(dropped) }));
      var area = areaOf(line);
      if (area && lines().indexOf(line) === active && areaViews[area] && areaViews[area].indexOf(shown) < 0) {
        show(areaViews[area][0]);
      }
    }
    render();
  });

  // --- Start ----------------------------------------------------------------------------

  function setUpLine(line) {
    var points = field(line, "points");
    if (points) points.disabled = false;
    line.querySelectorAll("[data-map-select]").forEach(function (button) { button.hidden = false; });
  }

  lines().forEach(setUpLine);
  panel.hidden = false;
  panel.closest(".cocktail-layout").classList.add("has-map");
  var firstLine = lines()[0];
  mark(0, false);
  if (firstLine && !areaOf(firstLine)) show(shown);
})();
