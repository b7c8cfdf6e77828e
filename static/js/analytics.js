// Overview charts and live KPIs.
// - Every [data-plotly] holds its figure as JSON (built server-side by
//   analytics.figures); it is drawn with the vendored plotly.js on load,
//   after every htmx swap and again when the theme changes, taking the text
//   and grid colours from the theme's CSS variables.
// - The KPI cards follow the event stream (/ws/events/): any event schedules
//   one refresh of #overview-kpis a second later, so they refresh at most
//   once a second however busy the stream is.
(function () {
  "use strict";

  function colours() {
    var style = getComputedStyle(document.documentElement);
    return {
      text: style.getPropertyValue("--text").trim() || "#161a2b",
      muted: style.getPropertyValue("--muted").trim() || "#5d647a",
      grid: style.getPropertyValue("--border").trim() || "#e2e5ee",
    };
  }

  function themed(layout) {
    var c = colours();
    layout.font = Object.assign({}, layout.font, { color: c.text });
    ["xaxis", "yaxis", "yaxis2"].forEach(function (axis) {
      if (axis === "yaxis2" && !layout.yaxis2) return;
      layout[axis] = Object.assign({}, layout[axis], { gridcolor: c.grid, linecolor: c.grid, tickfont: { color: c.muted } });
    });
    if (layout.legend) layout.legend = Object.assign({}, layout.legend, { font: { color: c.text } });
    return layout;
  }

  function draw(root) {
    if (!window.Plotly) return;
    (root || document).querySelectorAll("[data-plotly]").forEach(function (holder) {
      var source = holder.querySelector('script[type="application/json"]');
      var area = holder.querySelector(".ana-plot-area");
      if (!source || !area) return;
      var figure = JSON.parse(source.textContent);
      window.Plotly.react(area, figure.data, themed(figure.layout), { displayModeBar: false, responsive: true });
    });
  }

  var timer = null;
  function refreshKpis() {
    timer = null;
    var kpis = document.getElementById("overview-kpis");
    if (kpis && window.htmx) window.htmx.ajax("GET", kpis.dataset.kpisUrl, { target: "#overview-kpis", swap: "outerHTML" });
  }

  function listen() {
    if (!document.querySelector("[data-live-kpis]") || !window.WebSocket) return;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    // Batch frames: one message per relay batch (only the arrival matters here).
    var socket = new WebSocket(scheme + location.host + "/ws/events/?batch=1");
    socket.onmessage = function () {
      if (!timer) timer = setTimeout(refreshKpis, 1000);
    };
    socket.onclose = function () { setTimeout(listen, 3000); };
  }

  document.addEventListener("DOMContentLoaded", function () { draw(); listen(); });
  document.addEventListener("htmx:afterSettle", function (event) { draw(event.target); });
  document.addEventListener("paylab:theme", function () { draw(); });
  if (window.matchMedia) {
    var dark = window.matchMedia("(prefers-color-scheme: dark)");
    if (dark.addEventListener) dark.addEventListener("change", function () { draw(); });
  }
})();
