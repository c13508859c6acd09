// The console's charts (Chart.js, vendored): holds placed and released per week by code, from
// the page's JSON block (no inline script, so the Content-Security-Policy can forbid them).
// Forms that change something ask for confirmation first.
(function () {
  var PALETTE = ["#165dff", "#f53f3f", "#ff7d00", "#00b42a", "#722ed1", "#0fc6c2",
                 "#f7ba1e", "#eb2f96", "#86909c", "#3491fa", "#9fdb1d", "#a9aeb8"];
  var holder = document.getElementById("chart-data");
  window.jiefengCharts = [];
  if (holder && typeof Chart !== "undefined") {
    var data = JSON.parse(holder.textContent);
    [["placed-chart", data.placed], ["released-chart", data.released]].forEach(function (pair) {
      var canvas = document.getElementById(pair[0]);
      if (!canvas) return;
      var codes = Object.keys(pair[1]);
      window.jiefengCharts.push(new Chart(canvas, {
        type: "bar",
        data: {
          labels: data.weeks,
          datasets: codes.map(function (code, i) {
            return {label: code, data: pair[1][code],
                    backgroundColor: PALETTE[i % PALETTE.length]};
          })
        },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true,
                                             ticks: {precision: 0}}},
          plugins: {legend: {position: "bottom"}}
        }
      }));
    });
  }
  // Every form that changes something asks first (its data-confirm text).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
})();
