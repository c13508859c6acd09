// The customer page's score chart: data from the page's JSON block (no inline script, so the
// Content-Security-Policy can forbid them).
(function () {
  var holder = document.getElementById("score-data");
  var canvas = document.getElementById("score-chart");
  if (!holder || !canvas || typeof Chart === "undefined") return;
  var data = JSON.parse(holder.textContent);
  window.jiefengScoreChart = new Chart(canvas, {
    type: "radar",
    data: {
      labels: data.labels,
      datasets: [{label: data.label, data: data.values, fill: true,
                  backgroundColor: "rgba(22, 93, 255, 0.15)", borderColor: "#165dff"}]
    },
    options: {
      animation: false,
      responsive: true,
      scales: {r: {min: 0, max: 100, ticks: {stepSize: 20}}},
      plugins: {legend: {display: false}}
    }
  });
})();
