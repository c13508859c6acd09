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

// Countdowns to the moment a hold lifts by itself, updated every second. They run on the
// service's clock (the page says when it was made), not the device's, which may be wrong.
(function () {
  var clocks = document.querySelectorAll("time[data-countdown]");
  if (!clocks.length) return;
  var holder = document.querySelector("[data-server-now]");
  var serverNow = holder ? Date.parse(holder.getAttribute("data-server-now")) : NaN;
  var offset = isNaN(serverNow) ? 0 : serverNow - Date.now();
  function tick() {
    var now = Date.now() + offset;
    clocks.forEach(function (el) {
      var left = Math.floor((Date.parse(el.getAttribute("datetime")) - now) / 1000);
      if (isNaN(left)) return;
      if (left <= 0) { el.textContent = el.getAttribute("data-done"); return; }
      var u = el.getAttribute("data-units").split("|");
      var d = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600),
          m = Math.floor(left % 3600 / 60), s = left % 60;
      el.textContent = (d ? d + " " + u[0] + " " : "") + h + " " + u[1] + " " + m + " " + u[2] +
        " " + s + " " + u[3];
    });
  }
  tick();
  window.jiefengCountdown = setInterval(tick, 1000);
})();
