// Draw each Vega-Lite spec the server built into its #chart-<name> box (vendored vega-embed, no network).
(function () {
  "use strict";
  const specs = JSON.parse(document.getElementById("chart-specs").textContent);
  Object.keys(specs).forEach(function (name) {
    const box = document.getElementById("chart-" + name);
    if (box && specs[name]) {
      vegaEmbed(box, specs[name], { actions: false, renderer: "svg" }).then(function () { box.dataset.drawn = "1"; });
    }
  });
}());
