// Signature pad: draw on a <canvas> with a finger, stylus or mouse (pointer
// events); every stroke writes the drawing as a PNG data URL into the hidden
// field named by data-signature-for. A refused post keeps the drawing.
(function () {
  "use strict";

  function setUp(canvas) {
    var field = document.getElementById(canvas.dataset.signatureFor);
    if (!field) return;
    var context = canvas.getContext("2d");
    var drawing = false;
    var drawn = false;
    var last = null;

    function paintBackground() {
      context.fillStyle = "#ffffff";
      context.fillRect(0, 0, canvas.width, canvas.height);
      context.strokeStyle = "#1c2427";
      context.lineWidth = 3;
      context.lineCap = "round";
      context.lineJoin = "round";
    }

    function point(event) {
      var box = canvas.getBoundingClientRect();
      return {
        x: (event.clientX - box.left) * (canvas.width / box.width),
        y: (event.clientY - box.top) * (canvas.height / box.height),
      };
    }

    function save() {
      field.value = drawn ? canvas.toDataURL("image/png") : "";
    }

    paintBackground();
    if (field.value.indexOf("data:image/png;base64,") === 0) {
      var previous = new Image();
      previous.onload = function () {
        context.drawImage(previous, 0, 0, canvas.width, canvas.height);
        drawn = true;
      };
      previous.src = field.value;
    }

    canvas.addEventListener("pointerdown", function (event) {
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      drawing = true;
      last = point(event);
      context.beginPath();
      context.arc(last.x, last.y, 1.2, 0, Math.PI * 2);
      context.fillStyle = "#1c2427";
      context.fill();
      drawn = true;
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!drawing) return;
      event.preventDefault();
      var next = point(event);
      context.beginPath();
      context.moveTo(last.x, last.y);
      context.lineTo(next.x, next.y);
      context.stroke();
      last = next;
    });
    function stop() {
      if (!drawing) return;
      drawing = false;
      save();
    }
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    canvas.addEventListener("pointerleave", stop);

    document.querySelectorAll('[data-signature-clear="' + field.id + '"]').forEach(function (button) {
      button.addEventListener("click", function () {
        context.clearRect(0, 0, canvas.width, canvas.height);
        paintBackground();
        drawn = false;
        save();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-signature-for]").forEach(setUp);
  });
})();
