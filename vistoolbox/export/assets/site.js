// vis export: arrow keys step through units (as in the dashboard) and a click on a top-9 patch shows
// its source image with the receptive-field box. Pages work without this script too.
(function () {
  "use strict";
  var KEYS = {ArrowLeft: "prev", ArrowRight: "next", ArrowUp: "up", ArrowDown: "down", Escape: "layer"};

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    var tag = (event.target && event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") { return; }
    var href = document.body.dataset[KEYS[event.key] || ""];
    if (!href) { return; }
    event.preventDefault();
    window.location.href = href;
  });

  function place(element, box) {
    if (!element) { return; }
    if (!box) { element.hidden = true; return; }
    var v = box.split(" ");
    element.style.left = v[0] + "%";
    element.style.top = v[1] + "%";
    element.style.width = v[2] + "%";
    element.style.height = v[3] + "%";
    element.hidden = false;
  }

  function select(rank) {
    var hit = document.querySelector('.hit[data-rank="' + rank + '"]') || document.querySelector(".hit");
    var image = document.getElementById("source-img");
    if (!hit || !image) { return; }
    document.querySelectorAll(".hit.selected").forEach(function (el) { el.classList.remove("selected"); });
    hit.classList.add("selected");
    var frame = image.parentElement;
    if (hit.dataset.src) {
      if (image.getAttribute("src") !== hit.dataset.src) { image.src = hit.dataset.src; }
      frame.hidden = false;
    } else {
      frame.hidden = true;
    }
    place(document.getElementById("crop-box"), hit.dataset.crop);
    place(document.getElementById("field-box"), hit.dataset.field);
    var caption = document.getElementById("source-caption");
    if (caption) { caption.textContent = hit.dataset.caption || ""; }
  }

  function fromHash() {
    var match = /^#r(\d+)$/.exec(window.location.hash);
    select(match ? match[1] : 0);
  }

  window.addEventListener("hashchange", fromHash);
  document.addEventListener("DOMContentLoaded", fromHash);
})();
