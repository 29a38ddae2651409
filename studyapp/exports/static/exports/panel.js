// Export panel: start jobs without leaving the dashboard and poll their progress.
(function () {
  "use strict";
  const panel = document.querySelector("[data-export-panel]");
  if (!panel) return;
  const form = panel.querySelector("[data-export-form]");
  const kind = panel.querySelector("[data-export-kind]");
  const format = panel.querySelector("[data-export-format]");
  const feedback = panel.querySelector("[data-export-feedback]");
  const body = panel.querySelector("[data-export-jobs] tbody");
  const statusUrl = panel.dataset.statusUrl;
  let timer = null;

  // Datasets hold message lists: JSON Lines or Parquet only.
  function syncFormats() {
    const csv = format.querySelector("option[value=csv]");
    csv.disabled = kind.value !== "analysis";
    if (csv.disabled && format.value === "csv") format.value = "jsonl";
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  // Retry and cancel answer 409 with the reason when they do not apply (a run still alive).
  function button(label, url) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", async () => {
      const token = form.querySelector("[name=csrfmiddlewaretoken]").value;
      const response = await fetch(url, {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRFToken": token },
        credentials: "same-origin",
      });
      const data = await response.json().catch(() => ({}));
      feedback.textContent = response.ok ? label + ": done." : data.error || response.statusText;
      poll();
    });
    return b;
  }

  function render(jobs) {
    body.replaceChildren();
    if (!jobs.length) {
      const tr = document.createElement("tr");
      const td = cell("No exports yet.");
      td.colSpan = 6;
      td.className = "muted small";
      tr.append(td);
      body.append(tr);
      return;
    }
    for (const job of jobs) {
      const tr = document.createElement("tr");
      tr.dataset.exportJob = job.id;
      tr.dataset.status = job.status;
      const progress = document.createElement("td");
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = job.progress;
      progress.append(bar, document.createTextNode(" " + (job.error || job.message)));
      const file = document.createElement("td");
      if (job.download_url) {
        const a = document.createElement("a");
        a.href = job.download_url;
        a.textContent = "Download";
        file.append(a);
      }
      if (job.cancel_url) file.append(button("Cancel", job.cancel_url));
      if (job.retry_url) file.append(button("Retry", job.retry_url));
      tr.append(cell(new Date(job.created_at).toLocaleString()), cell(job.kind_label),
        cell(job.format), cell(job.status), progress, file);
      body.append(tr);
    }
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const response = await fetch(statusUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.statusText);
      const data = await response.json();
      render(data.jobs);
      const busy = data.jobs.some((j) => j.status === "queued" || j.status === "running");
      timer = setTimeout(poll, busy ? 1500 : 15000);
    } catch (err) {
      feedback.textContent = "Could not load export status: " + err.message;
      timer = setTimeout(poll, 15000);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    feedback.textContent = "Starting…";
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    feedback.textContent = response.ok ? "Export queued." : data.error || response.statusText;
    poll();
  });

  kind.addEventListener("change", syncFormats);
  syncFormats();
  poll();
})();
