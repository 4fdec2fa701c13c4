// The console's own script (served from this origin; the CSP forbids inline script).
// 1. htmx requests carry the session's CSRF token as X-CSRF-Token (forms carry it too).
// 2. The overview chart: decisions over time, allow/deny stacked; a click on a bar opens
//    the decisions of that bucket (the same link the table beside it gives).
// 3. A principal's risk history: its level over time as steps, from the behaviour monitor
//    and from administrators (every step is also a row of the table below the chart).
"use strict";
document.addEventListener("htmx:configRequest", function (event) {
  var main = document.getElementById("main");
  if (main && main.dataset.csrf) { event.detail.headers["X-CSRF-Token"] = main.dataset.csrf; }
});

function drawOverview() {
  var source = document.getElementById("chart-data");
  var canvas = document.getElementById("over-time");
  if (!source || !canvas || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var labels = data.buckets.map(function (b) { return b[0].replace("T", " ").slice(0, 16); });
  var chart = new Chart(canvas, {
    type: "bar",
    data: {
      labels: labels,
      datasets: [
        { label: "allow", data: data.buckets.map(function (b) { return b[2]; }), backgroundColor: "#2e8b57" },
        { label: "deny", data: data.buckets.map(function (b) { return b[3]; }), backgroundColor: "#c0392b" }
      ]
    },
    options: {
      animation: false,
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
      onClick: function (_event, elements) {
        if (!elements.length) { return; }
        var b = data.buckets[elements[0].index];
        var outcome = elements[0].datasetIndex === 1 ? "deny" : "allow";
        window.location.href = data.decisions + "?decision=" + outcome + "&since=" +
          encodeURIComponent(b[0]) + "&until=" + encodeURIComponent(b[1]);
      }
    }
  });
  canvas.dataset.ready = "1";
  window.pdpOverviewChart = chart;
}
document.addEventListener("DOMContentLoaded", drawOverview);

function drawRiskHistory() {
  var source = document.getElementById("risk-data");
  var canvas = document.getElementById("risk-history");
  if (!source || !canvas || typeof Chart === "undefined") { return; }
  var points = JSON.parse(source.textContent).points;
  var names = ["low", "medium", "high", "critical"];
  var chart = new Chart(canvas, {
    type: "line",
    data: {
      labels: points.map(function (p) { return p[0].replace("T", " ").slice(0, 19); }),
      datasets: [
        { label: "behaviour monitor", data: points.map(function (p) { return p[1]; }),
          stepped: "after", borderColor: "#a1121b", backgroundColor: "#a1121b" },
        { label: "administrator", data: points.map(function (p) { return p[2]; }),
          stepped: "after", borderColor: "#102a43", backgroundColor: "#102a43", borderDash: [6, 4] }
      ]
    },
    options: {
      animation: false,
      plugins: { tooltip: { callbacks: {
        afterBody: function (items) { return points[items[0].dataIndex][3]; } } } },
      scales: { y: { min: 0, max: 3, ticks: { stepSize: 1,
        callback: function (v) { return names[v] || v; } } } }
    }
  });
  canvas.dataset.ready = "1";
  window.pdpRiskChart = chart;
}
document.addEventListener("DOMContentLoaded", drawRiskHistory);
