/* Researchers' dashboards: draw the plotly figures, poll the live monitor, replay documents.
   Every text that came from a participant or a model is inserted with textContent. */
(function () {
  "use strict";

  function readJSON(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  /* Figures: <div data-figure-target="KEY"> drawn from <script id="fig-KEY">. */
  function drawFigures() {
    if (typeof window.Plotly === "undefined") return;
    document.querySelectorAll("[data-figure-target]").forEach(function (target) {
      var fig = readJSON("fig-" + target.getAttribute("data-figure-target"));
      if (!fig) return;
      window.Plotly.newPlot(target, fig.data, fig.layout, {
        responsive: true,
        displaylogo: false,
      });
    });
  }

  /* Live monitor ---------------------------------------------------------------------------- */
  var POLL_MS = 5000;

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "never";
    if (seconds < 90) return Math.round(seconds) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    return (seconds / 3600).toFixed(1) + " h ago";
  }

  function ms(value) {
    return value === null || value === undefined ? "–" : Math.round(value) + " ms";
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function fillTable(table, headers, rows, render) {
    table.textContent = "";
    var head = table.createTHead().insertRow();
    headers.forEach(function (h) {
      var th = document.createElement("th");
      th.scope = "col";
      th.textContent = h;
      head.appendChild(th);
    });
    var body = table.createTBody();
    if (!rows.length) {
      var empty = body.insertRow();
      var td = cell(empty, "none", "muted");
      td.colSpan = headers.length;
      return;
    }
    rows.forEach(function (r) { render(body.insertRow(), r); });
  }

  function sessionLink(row, template, publicId, isTest) {
    var td = document.createElement("td");
    var a = document.createElement("a");
    a.href = template.replace("00000000-0000-0000-0000-000000000000", publicId);
    a.textContent = publicId.slice(0, 8);
    a.className = "mono";
    td.appendChild(a);
    if (isTest) {
      var badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "test";
      td.appendChild(document.createTextNode(" "));
      td.appendChild(badge);
    }
    row.appendChild(td);
  }

  function renderMonitor(section, data) {
    var link = section.getAttribute("data-conversation-url");
    Object.keys(data.counts).forEach(function (key) {
      var node = section.querySelector('[data-monitor-count="' + key + '"]');
      if (node) node.textContent = data.counts[key];
    });
    function sessions(name) {
      var table = section.querySelector('[data-monitor-table="' + name + '"]');
      fillTable(table, ["Participation", "Arm", "Turn", "Last seen"], data[name], function (tr, r) {
        sessionLink(tr, link, r.public_id, r.is_test);
        cell(tr, r.arm);
        cell(tr, r.turn, "n");
        cell(tr, ago(r.seen_seconds_ago));
      });
    }
    sessions("writing_now");
    sessions("stuck");
    fillTable(section.querySelector('[data-monitor-table="erroring"]'),
      ["Participation", "Arm", "Errors", "Last error"], data.erroring, function (tr, r) {
        sessionLink(tr, link, r.public_id, false);
        cell(tr, r.arm);
        cell(tr, r.recent_errors, "n");
        cell(tr, r.last_error, "small");
      });
    var arms = Object.keys(data.latency_recent).map(function (k) { return data.latency_recent[k]; });
    fillTable(section.querySelector('[data-monitor-table="latency_recent"]'),
      ["Arm", "Replies", "Errors", "TTFT p50", "TTFT p95"], arms, function (tr, r) {
        cell(tr, r.arm);
        cell(tr, r.replies, "n");
        cell(tr, r.errors, "n");
        cell(tr, ms(r.ttft_p50), "n");
        cell(tr, ms(r.ttft_p95), "n");
      });
    var status = section.querySelector("[data-monitor-status]");
    if (status) status.textContent = "updated " + new Date(data.generated_at).toLocaleTimeString();
  }

  function startMonitor() {
    var section = document.querySelector("[data-monitor]");
    if (!section) return;
    var url = section.getAttribute("data-url");
    var status = section.querySelector("[data-monitor-status]");
    function poll() {
      if (document.hidden) return;  // no point refreshing a tab nobody looks at
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (data) { renderMonitor(section, data); })
        .catch(function (err) { if (status) status.textContent = "refresh failed (" + err.message + ")"; });
    }
    poll();
    window.setInterval(poll, POLL_MS);
    document.addEventListener("visibilitychange", poll);
  }

  /* Scoring progress ---------------------------------------------------------------------- */
  var SCORING_POLL_MS = 3000;

  function startScoring() {
    var section = document.querySelector("[data-scoring]");
    if (!section) return;
    var url = section.getAttribute("data-url");
    var bar = section.querySelector("[data-scoring-bar]");
    var status = section.querySelector("[data-scoring-status]");
    function render(data) {
      Object.keys(data).forEach(function (key) {
        var node = section.querySelector('[data-scoring-count="' + key + '"]');
        if (node) node.textContent = String(data[key]);
      });
      bar.max = Math.max(data.total, 1);
      bar.value = data.scored + data.errors;
      status.textContent = data.pending > 0 ? "scoring…" : "";
    }
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (data) {
          render(data);
          // Keep polling only while judges still owe scores and someone is looking.
          if (data.pending > 0) window.setTimeout(poll, document.hidden ? 4 * SCORING_POLL_MS : SCORING_POLL_MS);
        })
        .catch(function (err) { status.textContent = "refresh failed (" + err.message + ")"; });
    }
    poll();
  }

  /* Document replay ------------------------------------------------------------------------- */
  function startReplay() {
    var slider = document.querySelector("[data-replay-slider]");
    var versions = readJSON("document-versions");
    if (!slider || !versions || !versions.length) return;
    var text = document.querySelector("[data-replay-text]");
    var number = document.querySelector("[data-replay-number]");
    var time = document.querySelector("[data-replay-time]");
    function show() {
      var v = versions[Number(slider.value)];
      text.textContent = v.text;
      number.textContent = String(Number(slider.value) + 1);
      time.textContent = "saved " + new Date(v.at).toLocaleString() + " (#" + v.number + ")";
    }
    slider.addEventListener("input", show);
    show();
  }

  function start() {
    drawFigures();
    startMonitor();
    startScoring();
    startReplay();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
