// Draw the dashboard's charts from the JSON the server put in the page (no inline script: CSP).
(() => {
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const colours = { blue: "#2f6fde", teal: "#14a394", red: "#c0392b", amber: "#d9962b" };
  const options = (stacked) => ({
    responsive: true, maintainAspectRatio: false, animation: false,
    scales: { x: { stacked }, y: { stacked, beginAtZero: true, ticks: { precision: 0 } } },
    plugins: { legend: { display: stacked } },
  });
  const draw = (id, type, labels, datasets, stacked = false) =>
    new Chart(document.getElementById(id), { type, data: { labels, datasets }, options: options(stacked) });
  const days = data.daily.days;
  draw("chart-requests", "line", days, [{ label: "requests", data: data.daily.requests,
    borderColor: colours.blue, backgroundColor: colours.blue, tension: 0.2 }]);
  draw("chart-tokens", "bar", days, [
    { label: "prompt", data: data.daily.prompt_tokens, backgroundColor: colours.blue },
    { label: "completion", data: data.daily.completion_tokens, backgroundColor: colours.teal },
  ], true);
  draw("chart-errors", "bar", days, [{ label: "errors", data: data.daily.errors, backgroundColor: colours.red }]);
  draw("chart-models", "bar", data.by_model.names, [{ label: "requests", data: data.by_model.requests,
    backgroundColor: colours.blue }]);
  draw("chart-keys", "bar", data.by_key.names, [{ label: "requests", data: data.by_key.requests,
    backgroundColor: colours.amber }]);
})();
