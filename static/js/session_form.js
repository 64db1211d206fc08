// The session form's cocktail lines and cautions, kept in step as they change.
//
// Batches: each line's batch list offers only the batches of the line's
// product (each batch option names its product in data-product); a batch
// chosen before the product sets the product. Without this script the
// batches are listed under their products and the server refuses a batch of
// another product, with its sentence beside the batch.
//
// Cautions: each acknowledgement box carries the areas it is shown for
// ("cold_sores:face"). When the session's areas change, a caution whose
// areas changed is shown with its new areas and unticked, so a tick is
// always given knowing which areas it concerns; one that no longer concerns
// any area treated is hidden and not sent. The server judges the same on
// submit (gate 7), with or without this script.
(function () {
  "use strict";

  var form = document.querySelector("form.session-form");
  if (!form) return;
  var linesBox = form.querySelector("[data-lines]");
  if (!linesBox) return;

  function lines() {
    return Array.prototype.slice.call(linesBox.querySelectorAll(".cocktail-line"));
  }
  function field(line, name) {
    return line.querySelector('[name$="-' + name + '"]');
  }

  // --- Batches of the line's product ----------------------------------------------------

  // Each line's batch options as the page gave them, before any filtering.
  var allOptions = new WeakMap();

  function batchOptions(select) {
    if (!allOptions.has(select)) {
      allOptions.set(select, Array.prototype.slice.call(select.querySelectorAll("option[data-product]")));
    }
    return allOptions.get(select);
  }

  function offerBatches(line) {
    var product = field(line, "product");
    var batch = field(line, "batch");
    if (!product || !batch) return;
    var options = batchOptions(batch);
    var chosen = batch.value;
    var blank = batch.querySelector('option[value=""]');
    while (batch.firstChild) batch.removeChild(batch.firstChild);
    if (blank) batch.appendChild(blank);
    if (product.value) {
      options.forEach(function (option) {
        if (option.getAttribute("data-product") === product.value) batch.appendChild(option);
      });
    } else {
      // No product yet: every batch, under its product, as without the script.
      var groups = {};
      options.forEach(function (option) {
        var label = option.getAttribute("data-group") || "";
        if (!groups[label]) {
          groups[label] = document.createElement("optgroup");
          groups[label].label = label;
          batch.appendChild(groups[label]);
        }
        groups[label].appendChild(option);
      });
    }
    var kept = options.some(function (option) {
      return option.value === chosen && option.parentNode && option.closest("select") === batch;
    });
    batch.value = kept ? chosen : "";
  }

  function setUpLine(line) {
    var batch = field(line, "batch");
    if (!batch || allOptions.has(batch)) return;
    // The product's name of each option, for the list without a product.
    batch.querySelectorAll("optgroup").forEach(function (group) {
      group.querySelectorAll("option").forEach(function (option) {
        option.setAttribute("data-group", group.label);
      });
    });
    batchOptions(batch);
    offerBatches(line);
  }

  linesBox.addEventListener("change", function (event) {
    var line = event.target.closest(".cocktail-line");
    if (!line) return;
    if (event.target.hasAttribute("data-line-product")) {
      offerBatches(line);
    } else if (event.target.hasAttribute("data-line-batch")) {
      var product = field(line, "product");
      var option = event.target.options[event.target.selectedIndex];
      var of = option ? option.getAttribute("data-product") : "";
      if (product && of && product.value !== of) {
        product.value = of;
        offerBatches(line);
      }
    }
    checkCautions();
  });

  // --- Cautions for the areas chosen ----------------------------------------------------

  var boxes = Array.prototype.slice.call(form.querySelectorAll("input[data-caution]"));

  function areaNames() {
    var names = {};
    var select = linesBox.querySelector('select[name$="-area"]');
    if (select) {
      Array.prototype.forEach.call(select.options, function (option) {
        names[option.value] = option.textContent.trim();
      });
    }
    return names;
  }

  function areasTreated() {
    var areas = {};
    lines().forEach(function (line) {
      var left = field(line, "DELETE");
      var area = field(line, "area");
      if (area && area.value && !(left && left.checked)) areas[area.value] = true;
    });
    return areas;
  }

  function checkCautions() {
    if (!boxes.length) return;
    var treated = areasTreated();
    var names = areaNames();
    boxes.forEach(function (box) {
      var concerns = (box.getAttribute("data-caution-areas") || "").split(",").filter(Boolean);
      if (!concerns.length) return; // every area: nothing to follow
      var now = concerns.filter(function (area) { return treated[area]; }).sort();
      var item = box.closest(".form-check");
      if (!now.length) {
        box.checked = false;
        box.disabled = true;
        if (item) item.hidden = true;
        return;
      }
      box.disabled = false;
      if (item) item.hidden = false;
      var value = box.getAttribute("data-caution") + ":" + now.join(",");
      if (value === box.value) return;
      box.value = value;
      box.checked = false;
      var shown = item && item.querySelector("[data-caution-shown]");
      if (shown) shown.textContent = now.map(function (area) { return names[area] || area; }).join(", ");
      var changed = item && item.querySelector("[data-caution-changed]");
      if (changed) changed.hidden = false;
    });
  }

  // The "areas changed" note asks for a tick: once given, the note has done its
  // work and goes; it comes back only when the areas change again.
  boxes.forEach(function (box) {
    box.addEventListener("change", function () {
      if (!box.checked) return;
      var item = box.closest(".form-check");
      var changed = item && item.querySelector("[data-caution-changed]");
      if (changed) changed.hidden = true;
    });
  });

  // Lines added or copied in place (js/needle_map.js) and lines left out.
  new MutationObserver(function () {
    lines().forEach(setUpLine);
    checkCautions();
  }).observe(linesBox, { childList: true });

  form.addEventListener("cocktail:areas", checkCautions);
  // Whatever changed the areas last, the ticks sent are for the areas sent.
  form.addEventListener("submit", checkCautions);

  lines().forEach(setUpLine);
})();
