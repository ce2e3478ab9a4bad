// Draw the scheduler's tables from the JSON in the page, then from /admin/scheduler.json every few seconds.
// Text only (textContent): principals are names a front end may choose.
(() => {
  const data = document.getElementById("scheduler-data");
  const refresh = Number(data.dataset.refresh) * 1000;
  const tables = {
    "scheduler-servers": { rows: "models", empty: "No server is scheduled.",
      columns: [["server"], ["server_busy", "num"], ["model"], ["options"], ["busy", "num"], ["note", "muted"]] },
    "scheduler-prompts": { rows: "prompts", empty: "No slot holds a prompt.",
      columns: [["server"], ["model"], ["where"], ["owner"], ["tokens", "num"], ["state"]] },
    "scheduler-cache": { rows: "cache", empty: "No answer has told of its prompt yet.",
      columns: [["server"], ["model"], ["hits", "num"], ["tokens", "num"], ["surprises", "num"],
                ["reliability", "num"]] },
    "scheduler-running": { rows: "running", empty: "Nothing runs.",
      columns: [["principal"], ["class"], ["model"], ["server"], ["since"], ["for", "num"], ["start"]] },
    "scheduler-waiting": { rows: "waiting", empty: "Nobody waits.",
      columns: [["position", "num"], ["principal"], ["class"], ["model"], ["waited", "num"], ["servers"]] },
  };
  const cell = (text, className) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  };
  const row = (cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  };
  const say = (message) => {
    const shown = document.getElementById("scheduler-message");
    shown.textContent = message;
    shown.hidden = !message;
  };
  const draw = (view) => {
    document.getElementById("scheduler-at").textContent = "· " + view.at;
    say(view.message);
    for (const [id, table] of Object.entries(tables)) {
      const rows = view[table.rows].map((item) =>
        row(table.columns.map(([key, className]) => cell(String(item[key] ?? ""), className))));
      if (!rows.length && view.ok) {
        const empty = cell(table.empty, "muted");
        empty.colSpan = table.columns.length;
        rows.push(row([empty]));
      }
      document.querySelector(`#${id} tbody`).replaceChildren(...rows);
    }
  };
  const poll = async () => {
    try {
      const answer = await fetch(data.dataset.url, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!answer.ok || !(answer.headers.get("Content-Type") || "").startsWith("application/json")) {
        say("The session ended: reload the page to log in again.");
        return; // a redirect to the login form: polling again would not help
      }
      draw(await answer.json());
    } catch (error) {
      say("The proxy did not answer; trying again.");
    }
    setTimeout(poll, refresh);
  };
  draw(JSON.parse(data.textContent));
  setTimeout(poll, refresh);
})();
