// Draw the usage report's charts from the JSON the server put in the page (no inline script: CSP).
(() => {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const palette = ["#2f6fde", "#14a394", "#d9962b", "#c0392b", "#8e44ad", "#16a085", "#7f8c8d", "#e67e22",
    "#2c3e50", "#b03a8c"];
  const options = (stacked) => ({
    responsive: true, maintainAspectRatio: false, animation: false,
    scales: { x: { stacked }, y: { stacked, beginAtZero: true } },
    plugins: { legend: { display: true } },
  });
  const draw = (id, type, labels, datasets, stacked) =>
    new Chart(document.getElementById(id), { type, data: { labels, datasets }, options: options(stacked) });
  const stackedBy = (series) => Object.entries(series).map(([name, values], n) =>
    ({ label: name, data: values, backgroundColor: palette[n % palette.length] }));
  draw("chart-tokens", "bar", data.series.buckets, stackedBy(data.series.tokens), true);
  draw("chart-gpu", "bar", data.series.buckets, stackedBy(data.series.gpu_seconds), true);
  const names = data.lines.map((line) => line.name);
  draw("chart-latency", "bar", names, [
    { label: "first token p50 (ms)", data: data.lines.map((l) => l.ttft_p50_ms), backgroundColor: palette[0] },
    { label: "first token p95 (ms)", data: data.lines.map((l) => l.ttft_p95_ms), backgroundColor: palette[1] },
    { label: "queue wait p95 (ms)", data: data.lines.map((l) => l.queue_p95_ms), backgroundColor: palette[2] },
  ], false);
})();
