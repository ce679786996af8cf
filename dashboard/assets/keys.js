// Units tab: clicks on grid cells and arrow keys select units; the selected cell is highlighted and kept in view.
(function () {
  document.addEventListener("keydown", function (event) {
    var keys = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"];
    if (keys.indexOf(event.key) < 0) { return; }
    var tag = (event.target && event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || (event.target && event.target.isContentEditable)) { return; }
    if (!document.getElementById("unit-grid") || !document.querySelector(".unit-cell")) { return; }
    if (!window.dash_clientside || !window.dash_clientside.set_props) { return; }
    event.preventDefault();
    window.dash_clientside.set_props("keys", {data: {key: event.key, t: Date.now()}});
  });
  document.addEventListener("click", function (event) {
    var cell = event.target && event.target.closest && event.target.closest("#unit-grid .unit-cell");
    if (!cell || !window.dash_clientside || !window.dash_clientside.set_props) { return; }
    window.dash_clientside.set_props("grid-click", {data: {unit: Number(cell.dataset.unit), t: Date.now()}});
  });
  window.visMarkSelected = function (sel) {
    document.querySelectorAll(".unit-cell.selected").forEach(function (el) { el.classList.remove("selected"); });
    if (sel) {
      var cell = document.querySelector('.unit-cell[data-unit="' + sel.unit + '"]');
      if (cell) { cell.classList.add("selected"); cell.scrollIntoView({block: "nearest"}); }
    }
    return "unit-grid";
  };
})();
