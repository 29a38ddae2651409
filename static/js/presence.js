// The pre-writing page's sign of life: a consent holds its quota place only while its page
// reports (limits.consent_presence_seconds in the study file), so a consent that is left at
// once does not keep a place from the next participant.
(function () {
  "use strict";
  var config = document.getElementById("presence-config");
  if (!config) { return; }
  var every = parseInt(config.dataset.intervalMs, 10) || 15000;
  var token = document.querySelector("input[name=csrfmiddlewaretoken]");

  function report() {
    fetch(config.dataset.url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": token ? token.value : "" },
    }).catch(function () { /* the next report will do */ });
  }

  setInterval(report, every);
  // A background tab's timers may be slowed to one a minute: report again on coming back.
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { report(); }
  });
})();
