/* The co-writing page: chat over the study's WebSocket (protocol v1, docs/protocol.md) beside
 * an editable document. Plain JavaScript, no build step.
 *
 * Model text is untrusted: it is only ever put on the page with textContent.
 * Numbered frames (seq) are applied once: anything at or below lastSeq is ignored, and after a
 * reconnect the server's state frame says where lastSeq now stands. Seqs count within an epoch:
 * when the server's counter starts over (a new epoch), a fresh state frame comes first.
 * Side-by-side turns show two candidates ("Reply A", "Reply B") to pick from; Regenerate asks
 * for a new sample of the latest reply, which replaces it once it has ended.
 * Time limits: the server says how long each limit leaves; the page counts down, warns ahead
 * of each, asks the server again when a count runs out, and keeps what was typed (in this
 * tab's sessionStorage, shown back by the outcome page) when the chat ends under it.
 * Phones: Enter makes a new line and the Send button sends; chat and document are two views.
 */
(function () {
  "use strict";

  var cfg = JSON.parse(document.getElementById("writing-config").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var els = {
    status: $("status"), messages: $("messages"), input: $("chat-input"), send: $("send"),
    stop: $("stop"), form: $("chat-form"), chatError: $("chat-error"), rating: $("rating"),
    turnError: $("turn-error"), turnErrorText: $("turn-error-text"), retry: $("retry"),
    doc: $("document"), docStatus: $("doc-status"), finish: $("finish"),
    finishForm: $("finish-form"), turnCount: $("turn-count"), regenerate: $("regenerate"),
    finishHint: $("finish-hint"), docConflict: $("doc-conflict"), docUseOther: $("doc-use-other"),
    docKeep: $("doc-keep"), sendHint: $("send-hint"), timeWarning: $("time-warning"),
    timeWarningText: $("time-warning-text"), stay: $("stay"), timeLeft: $("time-left"),
    workspace: $("workspace"), tabChat: $("tab-chat"), tabDoc: $("tab-doc"), working: $("working")
  };

  var HEARTBEAT_MS = 15000;
  var DOC_DEBOUNCE_MS = 1000;
  var MAX_EDITS_PER_SAVE = 500;
  // A phone's keyboard has no Shift+Enter: there Enter makes a new line and Send sends.
  var touchKeyboard = !!(window.matchMedia && matchMedia("(hover: none) and (pointer: coarse)").matches);

  var ws = null;
  var connected = false;
  var gotState = false;
  var closedForGood = false;
  var retryAfter = 0;  // seconds the server asked to wait before the next socket (rate_limited)
  var attempts = 0;
  var reconnectTimer = null;
  var lastSeq = null;          // highest numbered frame applied; null before the first state
  var epoch = null;            // the epoch lastSeq counts in; null before any numbered frame
  // The generation in flight: {generation_id, turn, text, el} for a reply, plus {old} for a
  // regeneration (the reply it would replace), or {pair: true, cands: [{generation_id, text,
  // el}, ...]} for the two candidates of a side-by-side turn.
  var streaming = null;
  var pairPending = null;      // {turn, group}: two candidates shown, waiting for the pick
  var choosing = false;        // a pick sent, not yet acknowledged
  var regen = null;            // {turn, left}: the latest reply may be regenerated left times
  var regenSending = false;
  var ratingDue = null;        // turn whose rating is required, or null
  var retryTurn = null;        // turn whose reply failed, or null
  var pendingSend = null;      // {client_msg_id, text, retries} sent but not acknowledged
  // How often a send refused for now (an error with retry_after) is sent again by the page.
  var MAX_SEND_RETRIES = 40;
  var ratingSending = false;

  var docVersion = 0;          // the server version our text is based on
  var docSavedText = null;     // the text the server last confirmed
  var docLoaded = false;
  var docTimer = null;
  var edits = [];
  var editsInFlight = [];
  var docInFlight = null;      // text sent, not yet confirmed
  var docWaiters = [];
  var docConflict = null;      // {version, text}: another tab's text a save of ours replaced
  var docResync = false;       // another tab saved: a state with its text is on its way

  // -- rendering ----------------------------------------------------------------------------
  function messageEl(role, turn, text) {
    var li = document.createElement("li");
    li.className = "msg " + role;
    li.dataset.turn = String(turn);
    li.dataset.role = role;
    var who = document.createElement("span");
    who.className = "msg-who";
    who.textContent = role === "user" ? "You" : "Assistant";
    var body = document.createElement("div");
    body.className = "msg-text";
    body.textContent = text;
    li.appendChild(who);
    li.appendChild(body);
    return li;
  }

  function setText(li, text) { li.querySelector(".msg-text").textContent = text; }

  function findMsg(role, turn) {
    return els.messages.querySelector('.msg.' + role + '[data-turn="' + turn + '"]');
  }

  function scrollChat() { els.messages.scrollTop = els.messages.scrollHeight; }

  function ensureUser(turn, text) {
    var li = findMsg("user", turn);
    if (!li) {
      li = messageEl("user", turn, text);
      var next = null;
      els.messages.querySelectorAll(".msg").forEach(function (m) {
        var t = Number(m.dataset.turn);
        // Before later turns, and before this turn's reply when it is already shown.
        if (!next && (t > turn || (t === turn && m.classList.contains("assistant")))) { next = m; }
      });
      els.messages.insertBefore(li, next);
    }
    return li;
  }

  function assistantEl(turn, generationId) {
    var old = findMsg("assistant", turn);
    if (old && old.dataset.generationId === generationId) { return old; }
    if (old) { old.remove(); }
    var li = messageEl("assistant", turn, "");
    li.dataset.generationId = generationId;
    var user = findMsg("user", turn);
    els.messages.insertBefore(li, user ? user.nextSibling : null);
    return li;
  }

  function words(text) {
    var t = text.trim();
    return t ? t.split(/\s+/).length : 0;
  }

  function msgText(li) { return li.querySelector(".msg-text").textContent; }

  // As the server counts (studyapp/feedback/selectors.py counted_turns): a reply with text to a
  // message of at least min_message_words words.
  function turnsCompleted() {
    var n = 0;
    els.messages.querySelectorAll(".msg.assistant:not(.streaming):not(.failed)").forEach(function (li) {
      var user = findMsg("user", li.dataset.turn);
      if (user && words(msgText(user)) >= cfg.min_message_words && words(msgText(li)) > 0) { n += 1; }
    });
    return n;
  }

  // What Finish still waits for, in words the participant can act on ("" when nothing).
  function finishMissing(done) {
    var missing = [];
    var turns = cfg.min_turns - done;
    if (turns > 0) {
      missing.push(turns + " more turn" + (turns === 1 ? "" : "s") + " (a turn counts when your " +
        "message has at least " + cfg.min_message_words + " words and the assistant replies)");
    }
    var docWords = words(els.doc.value);
    if (docWords < cfg.min_document_words) {
      missing.push(cfg.min_document_words === 1 ? "some text in your document" :
        "at least " + cfg.min_document_words + " words in your document (now " + docWords + ")");
    }
    return missing.length ? "Still needed to finish: " + missing.join("; ") + "." : "";
  }

  function setStatus(state, text) {
    els.status.dataset.state = state;
    els.status.textContent = text;
  }

  function showChatError(text) {
    els.chatError.textContent = text || "";
    els.chatError.hidden = !text;
  }

  function refresh() {
    var done = turnsCompleted();
    els.turnCount.textContent = String(done);
    var canWrite = connected && gotState && !closedForGood;
    var blocked = !!streaming || ratingDue !== null || retryTurn !== null || !!pendingSend ||
      pairPending !== null;
    els.input.disabled = !canWrite || !!pendingSend;
    els.send.disabled = !canWrite || blocked || els.input.value.trim() === "";
    var why = sendBlockedReason(canWrite);
    els.sendHint.textContent = why;
    els.sendHint.hidden = !why;
    els.tabChat.classList.toggle("attention", ratingDue !== null || pairPending !== null);
    els.stop.hidden = !streaming;
    els.stop.disabled = !canWrite;
    var ratingWasHidden = els.rating.hidden;
    els.rating.hidden = ratingDue === null;
    // The rating box takes room from the chat: keep the reply it asks about in view.
    if (ratingWasHidden && !els.rating.hidden) { scrollChat(); }
    els.rating.querySelectorAll("[data-value]").forEach(function (b) {
      b.disabled = !canWrite || ratingSending;
    });
    if (ratingDue !== null) { els.rating.dataset.turn = String(ratingDue); }
    els.turnError.hidden = retryTurn === null || !!streaming;
    // From the moment a message is sent until the reply's first character: the model may be
    // queued for a while, and the participant must see that something is happening.
    els.working.hidden = !(pendingSend || (streaming && !streaming.pair && !streaming.text));
    els.retry.disabled = !canWrite;
    els.doc.disabled = !docLoaded || closedForGood;
    var missing = finishMissing(done);
    els.finishHint.textContent = missing;
    els.finish.disabled = !!missing || !!streaming || ratingDue !== null || pairPending !== null;
    els.messages.querySelectorAll(".candidate .use-reply").forEach(function (b) {
      var cand = b.closest(".candidate");
      b.hidden = pairPending === null || cand.classList.contains("failed");
      b.disabled = !canWrite || choosing;
    });
    placeRegenerate(canWrite && !blocked && !regenSending);
  }

  // Why Send cannot be pressed now, in words the participant can act on ("" when it can, or
  // when only an empty message holds it back).
  function sendBlockedReason(canWrite) {
    if (closedForGood) { return "This chat has ended."; }
    if (!canWrite) { return "Waiting for the connection…"; }
    if (pendingSend) { return "Sending…"; }
    if (streaming) { return "The assistant is replying: wait for it, or press Stop."; }
    if (ratingDue !== null) { return "Rate the last reply first."; }
    if (pairPending !== null) { return "Pick one of the two replies first."; }
    if (retryTurn !== null) { return "Press Retry to get the last reply first."; }
    return "";
  }

  function placeRegenerate(allowed) {
    var last = els.messages.lastElementChild;
    var show = allowed && regen !== null && regen.left > 0 && !!last &&
      last.classList.contains("assistant") && !last.classList.contains("failed") &&
      Number(last.dataset.turn) === regen.turn;
    var m = els.messages;
    var atEnd = m.scrollTop + m.clientHeight >= m.scrollHeight - 40;
    var appears = show && els.regenerate.hidden;
    if (show && els.regenerate.parentNode !== last) { last.appendChild(els.regenerate); }
    els.regenerate.hidden = !show;
    if (appears && atEnd) { scrollChat(); }  // a reader at the end sees the button too
    if (regen !== null) {
      els.regenerate.title = "Ask for a different reply (" + regen.left + " left)";
    }
  }

  // -- the socket ---------------------------------------------------------------------------
  function socketUrl() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + cfg.ws_path + "?token=" + encodeURIComponent(cfg.token);
  }

  function connect() {
    reconnectTimer = null;
    setStatus(attempts ? "reconnecting" : "connecting", attempts ? "Reconnecting…" : "Connecting…");
    ws = new WebSocket(socketUrl());
    ws.onopen = function () {
      connected = true;
      send({ type: "hello", last_seq: lastSeq, epoch: epoch, focused: document.hasFocus() });
    };
    ws.onmessage = function (ev) {
      var frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      handle(frame);
    };
    ws.onclose = function (ev) {
      connected = false;
      gotState = false;
      ws = null;
      if (ev.code === 4401 || ev.code === 4409) { closedForGood = true; }
      refresh();
      if (closedForGood) { return; }
      attempts += 1;
      var delay = Math.min(10000, 500 * Math.pow(2, attempts - 1)) * (0.75 + Math.random() / 2);
      if (ev.code === 4429 && retryAfter) {
        // Too many sockets from this network: wait out the window, or every try counts again.
        delay = retryAfter * 1000 * (1 + Math.random() / 4);
        retryAfter = 0;
        setStatus("reconnecting", "Too many connections from your network — reconnecting shortly…");
      } else {
        setStatus("reconnecting", "Connection lost — reconnecting…");
      }
      reconnectTimer = setTimeout(connect, delay);
    };
  }

  function send(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) { return false; }
    ws.send(JSON.stringify(frame));
    return true;
  }

  function handle(frame) {
    if (typeof frame.seq === "number") {
      var sameEpoch = (frame.epoch || null) === epoch;
      if (sameEpoch && lastSeq !== null && frame.seq <= lastSeq) { return; }  // already applied
      lastSeq = frame.seq;
      epoch = frame.epoch || null;
    }
    var fn = HANDLERS[frame.type];
    if (fn) { fn(frame); }
    refresh();
  }

  var HANDLERS = {
    state: function (f) {
      var same = streaming && f.generation && f.generation.generation_id === streaming.generation_id &&
        f.last_seq === lastSeq;
      var keep = same && !streaming.pair ? streaming.text : "";
      var keepPair = same && streaming.pair ? streaming.cands.map(function (c) { return c.text; }) : null;
      // A reply begun before its message was stored: the message is not in f.messages yet.
      var earlyUser = null;
      if (keep && !f.messages.some(function (m) { return m.role === "user" && m.turn === streaming.turn; })) {
        var shown = findMsg("user", streaming.turn);
        earlyUser = shown ? { turn: streaming.turn, text: shown.querySelector(".msg-text").textContent } : null;
      }
      els.messages.textContent = "";
      f.messages.forEach(function (m) {
        var li = messageEl(m.role, m.turn, m.text);
        if (m.generation_id) { li.dataset.generationId = m.generation_id; }
        if (m.finish_reason === "cancelled") { li.classList.add("stopped"); }
        els.messages.appendChild(li);
      });
      if (earlyUser) { ensureUser(earlyUser.turn, earlyUser.text); }
      streaming = null;
      pairPending = null;
      choosing = false;
      regenSending = false;
      regen = f.regenerate || null;
      if (f.pair) { showPair(f.pair); }
      var g = f.generation;
      if (g && g.kind === "pair") {
        startPair(g.turn, g.generation_id, g.candidates, keepPair);
      } else if (g && g.kind === "regenerate") {
        startRegeneration(g.turn, g.generation_id, g.replaces, keep);
      } else if (g) {
        startStreaming(g.turn, g.generation_id, keep);
      }
      ratingDue = f.rating_due;
      // A rating sent on a socket that closed before its answer: this state says whether it
      // was stored (no longer due) or not (due again, and the rating buttons are offered).
      if (!gotState) { ratingSending = false; }
      retryTurn = f.retry_turn;
      if (retryTurn !== null) { els.turnErrorText.textContent = "The last reply was interrupted."; }
      lastSeq = f.last_seq;
      epoch = f.epoch || null;
      // A state on a socket that had one (a new epoch) comes before the ack of a send in flight.
      if (pendingSend && !gotState) {
        var stored = f.messages.some(function (m) { return m.client_msg_id === pendingSend.client_msg_id; });
        if (stored) {
          els.input.value = "";
          pendingSend = null;
        } else if (!send({ type: "send", text: pendingSend.text, client_msg_id: pendingSend.client_msg_id })) {
          // Its store may still be under way on the old socket (a database outage is waited
          // out); the same id is stored at most once, so the page sends it again as it was.
          pendingSend = null;
        }
      }
      loadDocument(f.document);
      if (docResync) {
        docResync = false;
        if (els.doc.value === f.document.text) { els.docStatus.textContent = "Updated from another tab"; }
      }
      gotState = true;
      attempts = 0;
      if (f.time_left) { setTimeLeft(f.time_left); }
      setStatus("connected", "Connected");
      scrollChat();
    },
    ack: function (f) {
      if (f.of === "send") {
        if (pendingSend && pendingSend.client_msg_id === f.client_msg_id) {
          ensureUser(f.turn, pendingSend.text);
          els.input.value = "";
          pendingSend = null;
        }
      } else if (f.of === "rate") {
        ratingSending = false;
        ratingDue = null;
      } else if (f.of === "choose") {
        choosing = false;
      } else if (f.of === "regenerate") {
        regenSending = false;
      }
    },
    turn_start: function (f) {
      ensureUser(f.turn, f.user_text);
      if (f.regenerate) {
        startRegeneration(f.turn, f.generation_id, f.replaces, "");
        scrollChat();
        return;
      }
      retryTurn = null;
      startStreaming(f.turn, f.generation_id, "");
      scrollChat();
    },
    pair_start: function (f) {
      ensureUser(f.turn, f.user_text);
      retryTurn = null;
      startPair(f.turn, f.generation_id, f.candidates, null);
      scrollChat();
    },
    delta: function (f) {
      if (!streaming) { return; }
      var target = streaming;
      if (streaming.pair) {
        target = streaming.cands[f.candidate];
        if (!target) { return; }
      }
      target.text += f.text;
      setText(target.el, target.text);
      scrollChat();
    },
    candidate_end: function (f) {
      var cand = candidateEl(f.turn, f.candidate);
      if (!cand) { return; }
      setText(cand, f.text);
      if (streaming && streaming.pair && streaming.cands[f.candidate]) {
        streaming.cands[f.candidate].text = f.text;
      }
      endCandidate(cand, f.finish_reason);
    },
    pair_end: function (f) {
      if (streaming && streaming.pair && streaming.generation_id === f.generation_id) { streaming = null; }
      showPair(f);
      scrollChat();
    },
    pair_chosen: function (f) {
      var li = messageEl("assistant", f.turn, f.text);
      li.dataset.generationId = f.generation_id;
      if (f.finish_reason === "cancelled") { li.classList.add("stopped"); }
      var shown = pairEl(f.turn) || findMsg("assistant", f.turn);
      if (shown) {
        shown.replaceWith(li);
      } else {
        var user = findMsg("user", f.turn);
        els.messages.insertBefore(li, user ? user.nextSibling : null);
      }
      if (pairPending && pairPending.turn === f.turn) { pairPending = null; }
      choosing = false;
      regen = null;  // a picked reply is not regenerated
      scrollChat();
    },
    turn_end: function (f) {
      if (f.regenerate) { endRegeneration(f); return; }
      if (f.candidate !== undefined) {
        // Only one candidate of a side-by-side turn succeeded: it is the reply.
        var pair = pairEl(f.turn);
        if (pair) { pair.remove(); }
        if (streaming && streaming.pair && streaming.turn === f.turn) { streaming = null; }
      }
      regen = cfg.max_regenerations > 0 ? { turn: f.turn, left: cfg.max_regenerations } : null;
      var li = findMsg("assistant", f.turn);
      if (!li || li.dataset.generationId !== f.generation_id) { li = assistantEl(f.turn, f.generation_id); }
      setText(li, f.text);
      li.classList.remove("streaming");
      if (f.finish_reason === "cancelled") { li.classList.add("stopped"); }
      if (streaming && streaming.generation_id === f.generation_id) { streaming = null; }
      scrollChat();
    },
    turn_error: function (f) {
      if (f.regenerate) { failRegeneration(f); return; }
      if (f.next_url) {
        // No retry can help (studyapp/writing/relay.py): the end page explains and pays.
        closedForGood = true;
        streaming = null;
        setStatus("closed", f.message);
        location.assign(f.next_url);
        return;
      }
      var li = findMsg("assistant", f.turn);
      if (li && li.dataset.generationId === f.generation_id) {
        li.classList.remove("streaming");
        li.classList.add("failed");
      }
      var pair = pairEl(f.turn);
      if (pair && pair.dataset.generationId === f.generation_id) {
        pair.classList.add("failed");
        pair.querySelectorAll(".candidate.streaming").forEach(function (c) { endCandidate(c, "error"); });
      }
      if (streaming && streaming.generation_id === f.generation_id) { streaming = null; }
      retryTurn = f.turn;
      els.turnErrorText.textContent = f.message;
    },
    turn_withdrawn: function (f) {
      // A reply begun before the server stored its message, which was then refused (an error
      // frame says why) or stored as another turn (its own turn_start follows).
      var li = findGeneration(f.generation_id);
      if (li) { li.remove(); }
      if (streaming && streaming.generation_id === f.generation_id) { streaming = null; }
      var user = findMsg("user", f.turn);
      if (user && !findMsg("assistant", f.turn)) { user.remove(); }
    },
    rating_due: function (f) { ratingDue = f.turn; },
    time_left: function (f) {
      setTimeLeft(f);
      if (f.of === "stay") { staySending = false; }
    },
    rating_given: function (f) {
      // Given in another tab (this tab's own rating is acknowledged as well).
      if (ratingDue === f.turn) { ratingDue = null; ratingSending = false; }
    },
    doc_version: function (f) {
      // Another tab saved: show its text, unless this tab holds edits of its own (their save
      // then reports the conflict). The state frame carries the document.
      if (f.version <= docVersion || docInFlight !== null || els.doc.value !== docSavedText ||
          docResync) { return; }
      docResync = send({ type: "hello", last_seq: lastSeq, epoch: epoch, focused: document.hasFocus() });
    },
    doc_saved: function (f) {
      docVersion = f.version;
      if (docInFlight !== null) { docSavedText = docInFlight; }
      docInFlight = null;
      editsInFlight = [];
      if (f.conflict && f.replaced) { showDocConflict(f.replaced); }
      els.docStatus.textContent = docConflict ? "Changed in another tab" :
        els.doc.value === docSavedText ? "Saved" : "Editing…";
      var waiters = docWaiters;
      docWaiters = [];
      waiters.forEach(function (w) { w(); });
    },
    error: function (f) {
      if (f.code === "unauthorized") {
        closedForGood = true;
        setStatus("closed", "This link is no longer valid. Please open the study again from your platform.");
        return;
      }
      if (f.code === "not_writing") {
        closedForGood = true;
        setStatus("closed", f.message || "This chat has ended.");
        keepTyped();
        if (f.next_url) { location.assign(f.next_url); }
        return;
      }
      if (f.code === "rate_limited") {
        retryAfter = Math.min(600, Number(f.retry_after) || 60);
        return;
      }
      if (f.code === "not_generating") {
        // The reply this page shows as streaming is over (it ended, or its server stopped):
        // ask again for the state, which shows its end or offers Retry.
        send({ type: "hello", last_seq: lastSeq, focused: document.hasFocus() });
        return;
      }
      if (f.of === "send" && pendingSend && f.retry_after !== undefined &&
          pendingSend.retries < MAX_SEND_RETRIES) {
        // Refused for now (Redis away, or a reply of a stopped server still marked in flight):
        // the page sends it again by itself, under its id, which is stored at most once.
        var again = pendingSend;
        again.retries += 1;
        setTimeout(function () {
          if (pendingSend === again && gotState) {
            send({ type: "send", text: again.text, client_msg_id: again.client_msg_id });
          }
        }, Math.min(30, Number(f.retry_after) || 3) * 1000);
        return;
      }
      if (f.of === "send") { pendingSend = null; }
      if (f.of === "rate") { ratingSending = false; }
      if (f.of === "choose") { choosing = false; }
      if (f.of === "regenerate") { regenSending = false; }
      if (f.of === "doc") { docInFlight = null; edits = editsInFlight.concat(edits); editsInFlight = []; }
      showChatError(f.message);
    }
  };

  function startStreaming(turn, generationId, text) {
    var li = assistantEl(turn, generationId);
    li.classList.add("streaming");
    li.classList.remove("failed");
    setText(li, text);
    streaming = { generation_id: generationId, turn: turn, text: text, el: li };
  }

  // -- regenerations: the new reply streams below the old one, which it replaces at the end ---
  function findGeneration(generationId) {
    return els.messages.querySelector('.msg.assistant[data-generation-id="' + generationId + '"]');
  }

  function startRegeneration(turn, generationId, replaces, text) {
    var li = findGeneration(generationId);
    var old = replaces ? findGeneration(replaces) : null;
    if (!li) {
      li = messageEl("assistant", turn, "");
      li.dataset.generationId = generationId;
      var after = old || findMsg("user", turn);
      els.messages.insertBefore(li, after ? after.nextSibling : null);
    }
    if (old && old !== li) {
      old.classList.add("replaced");
      old.hidden = true;
    }
    li.classList.add("streaming");
    setText(li, text);
    streaming = { generation_id: generationId, turn: turn, text: text, el: li, old: old };
  }

  function endRegeneration(f) {
    var li = findGeneration(f.generation_id) || assistantEl(f.turn, f.generation_id);
    setText(li, f.text);
    li.classList.remove("streaming");
    if (f.finish_reason === "cancelled") { li.classList.add("stopped"); }
    els.messages.querySelectorAll('.msg.assistant[data-turn="' + f.turn + '"]').forEach(function (m) {
      if (m !== li) { m.remove(); }
    });
    if (streaming && streaming.generation_id === f.generation_id) { streaming = null; }
    regen = { turn: f.turn, left: f.regenerations_left };
    regenSending = false;
    scrollChat();
  }

  function failRegeneration(f) {
    var li = findGeneration(f.generation_id);
    if (li) { li.remove(); }
    var old = findGeneration(f.kept);
    if (old) {
      old.hidden = false;
      old.classList.remove("replaced");
    }
    if (streaming && streaming.generation_id === f.generation_id) { streaming = null; }
    if (typeof f.regenerations_left === "number") { regen = { turn: f.turn, left: f.regenerations_left }; }
    regenSending = false;
    showChatError(f.message);
  }

  // -- side-by-side turns: two candidates, "Use this reply" on each once both have ended -----
  function pairEl(turn) {
    return els.messages.querySelector('.msg.pair[data-turn="' + turn + '"]');
  }

  function candidateEl(turn, index) {
    var pair = pairEl(turn);
    return pair && pair.querySelector('.candidate[data-candidate="' + index + '"]');
  }

  function buildPair(turn, pairId, candidates) {
    var old = pairEl(turn);
    if (old) { old.remove(); }
    var stray = findMsg("assistant", turn);  // e.g. a reply placeholder from before a reload
    if (stray) { stray.remove(); }
    var li = document.createElement("li");
    li.className = "msg pair";
    li.dataset.turn = String(turn);
    li.dataset.role = "pair";
    li.dataset.generationId = pairId;
    var help = document.createElement("p");
    help.className = "pair-help";
    help.textContent = "The assistant wrote two replies. Pick the one the conversation should continue with.";
    var row = document.createElement("div");
    row.className = "pair-candidates";
    candidates.forEach(function (c) {
      var label = "Reply " + String.fromCharCode(65 + c.candidate);
      var box = document.createElement("section");
      box.className = "candidate";
      box.dataset.candidate = String(c.candidate);
      box.dataset.generationId = c.generation_id;
      box.setAttribute("aria-label", label);
      var who = document.createElement("span");
      who.className = "msg-who";
      who.textContent = label;
      var body = document.createElement("div");
      body.className = "msg-text";
      var use = document.createElement("button");
      use.type = "button";
      use.className = "use-reply";
      use.dataset.testid = "use-reply";
      use.textContent = "Use this reply";
      use.hidden = true;
      box.appendChild(who);
      box.appendChild(body);
      box.appendChild(use);
      row.appendChild(box);
    });
    li.appendChild(help);
    li.appendChild(row);
    var user = findMsg("user", turn);
    els.messages.insertBefore(li, user ? user.nextSibling : null);
    return li;
  }

  function startPair(turn, pairId, candidates, texts) {
    var li = buildPair(turn, pairId, candidates);
    var cands = candidates.map(function (c, i) {
      var el = candidateEl(turn, c.candidate);
      var text = texts && texts[i] ? texts[i] : "";
      el.classList.add("streaming");
      setText(el, text);
      return { generation_id: c.generation_id, text: text, el: el };
    });
    streaming = { pair: true, generation_id: pairId, turn: turn, el: li, cands: cands, text: "" };
  }

  function endCandidate(cand, finishReason) {
    cand.classList.remove("streaming");
    if (finishReason === "error") { cand.classList.add("failed"); }
    if (finishReason === "cancelled") { cand.classList.add("stopped"); }
  }

  function showPair(pair) {
    var li = pairEl(pair.turn);
    if (!li || li.dataset.generationId !== pair.generation_id || !pair.generation_id) {
      li = buildPair(pair.turn, pair.generation_id || "", pair.candidates);
    }
    li.dataset.group = pair.group;
    pair.candidates.forEach(function (c) {
      var cand = candidateEl(pair.turn, c.candidate);
      setText(cand, c.text);
      endCandidate(cand, c.failed ? "error" : c.finish_reason);
      cand.querySelector(".use-reply").hidden = !!c.failed;  // before the chat scrolls to it
    });
    pairPending = { turn: pair.turn, group: pair.group };
  }

  // -- chat ---------------------------------------------------------------------------------
  function newId() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return String(Date.now()) + "-" + String(Math.random()).slice(2, 12);
  }

  els.form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = els.input.value;
    if (els.send.disabled || !text.trim()) { return; }
    showChatError("");
    pendingSend = { client_msg_id: newId(), text: text, retries: 0 };
    if (!send({ type: "send", text: text, client_msg_id: pendingSend.client_msg_id })) { pendingSend = null; }
    refresh();
  });
  if (touchKeyboard) { els.input.placeholder = "Write to the assistant… (Enter makes a new line; press Send to send)"; }
  els.input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && !touchKeyboard) {
      ev.preventDefault();
      els.form.requestSubmit ? els.form.requestSubmit() : els.form.dispatchEvent(new Event("submit"));
    }
  });
  els.input.addEventListener("input", refresh);
  els.stop.addEventListener("click", function () { send({ type: "stop" }); });
  els.messages.addEventListener("click", function (ev) {
    var use = ev.target.closest(".use-reply");
    if (!use || !pairPending || choosing) { return; }
    var cand = use.closest(".candidate");
    showChatError("");
    choosing = send({ type: "choose", group: pairPending.group, generation_id: cand.dataset.generationId });
    refresh();
  });
  els.regenerate.addEventListener("click", function () {
    if (regen === null || regenSending) { return; }
    showChatError("");
    regenSending = send({ type: "regenerate", turn: regen.turn });
    refresh();
  });
  els.retry.addEventListener("click", function () {
    showChatError("");
    send({ type: "retry" });
  });
  els.rating.addEventListener("click", function (ev) {
    var button = ev.target.closest("[data-value]");
    if (!button || ratingDue === null || ratingSending) { return; }
    ratingSending = send({ type: "rate", turn: ratingDue, value: Number(button.dataset.value) });
    refresh();
  });

  // -- the document -------------------------------------------------------------------------
  function loadDocument(doc) {
    if (!docLoaded || (els.doc.value === docSavedText && docInFlight === null)) {
      els.doc.value = doc.text;
      docSavedText = doc.text;
      docVersion = doc.version;
      docLoaded = true;
      els.docStatus.textContent = doc.version ? "Saved" : "";
      return;
    }
    // Local edits the server has not confirmed (made while offline): keep them and save now.
    edits = editsInFlight.concat(edits);
    editsInFlight = [];
    docInFlight = null;
    setTimeout(saveDocument, 0);
  }

  // A save of ours replaced another tab's newer text: both are stored as versions; the
  // participant picks which one the document goes on with.
  function showDocConflict(other) {
    docConflict = other;
    els.docConflict.hidden = false;
  }

  function closeDocConflict() {
    docConflict = null;
    els.docConflict.hidden = true;
    els.docStatus.textContent = els.doc.value === docSavedText ? "Saved" : "Editing…";
  }

  els.docUseOther.addEventListener("click", function () {
    if (!docConflict) { return; }
    els.doc.value = docConflict.text;
    lastDocLength = els.doc.value.length;
    closeDocConflict();
    saveDocument();
    refresh();
  });
  els.docKeep.addEventListener("click", closeDocConflict);

  function saveDocument() {
    clearTimeout(docTimer);
    docTimer = null;
    if (!docLoaded || docInFlight !== null) { return; }
    var text = els.doc.value;
    if (text === docSavedText && edits.length === 0) { return; }
    var batch = edits.slice(0, MAX_EDITS_PER_SAVE);
    if (!connected || !gotState) { return; }
    if (send({ type: "doc", text: text, version_base: docVersion, edits: batch })) {
      docInFlight = text;
      editsInFlight = batch;
      edits = edits.slice(batch.length);
      els.docStatus.textContent = "Saving…";
    }
  }

  var lastDocLength = 0;
  els.doc.addEventListener("focus", function () { lastDocLength = els.doc.value.length; });
  els.doc.addEventListener("input", function (ev) {
    var len = els.doc.value.length;
    edits.push({
      t: Date.now(), type: ev.inputType || "input", at: els.doc.selectionStart,
      delta: len - lastDocLength, len: len, data: ev.data ? String(ev.data).slice(0, 200) : null
    });
    lastDocLength = len;
    els.docStatus.textContent = "Editing…";
    refresh();  // Finish may wait for the document's words
    clearTimeout(docTimer);
    docTimer = setTimeout(saveDocument, edits.length >= MAX_EDITS_PER_SAVE ? 0 : DOC_DEBOUNCE_MS);
  });
  els.doc.addEventListener("blur", saveDocument);

  function documentFlushed(timeoutMs) {
    saveDocument();
    if (docInFlight === null && els.doc.value === docSavedText) { return Promise.resolve(); }
    return new Promise(function (resolve) {
      docWaiters.push(resolve);
      setTimeout(resolve, timeoutMs);
    });
  }

  els.finishForm.addEventListener("submit", function (ev) {
    if (els.finishForm.dataset.flushed === "1") { return; }
    ev.preventDefault();
    els.finish.disabled = true;
    documentFlushed(3000).then(function () {
      els.finishForm.dataset.flushed = "1";
      els.finishForm.submit();
    });
  });

  // -- presence -----------------------------------------------------------------------------
  window.addEventListener("focus", function () { if (gotState) { send({ type: "focus" }); } });
  window.addEventListener("blur", function () {
    if (gotState) { send({ type: "blur" }); }
    saveDocument();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { saveDocument(); }
  });
  window.addEventListener("pagehide", saveDocument);
  setInterval(function () {
    if (!gotState) { return; }
    if (send({ type: "heartbeat", focused: document.hasFocus(), active: acted }) && acted) {
      acted = false;
      idleEnds = cfg.time_warnings.idle_limit_s ? Date.now() + cfg.time_warnings.idle_limit_s * 1000 : null;
      idleVerified = false;
    }
  }, HEARTBEAT_MS);

  // -- time limits --------------------------------------------------------------------------
  var sessionEnds = null;      // Date.now() at which each limit ends the session; null: none
  var idleEnds = null;
  var idleVerified = false;    // idleEnds is the server's (not a guess from this tab's input)
  var timeAsked = false;       // a "time" frame sent, not yet answered
  var staySending = false;
  var sessionWarningClosed = false;
  var acted = false;           // input since the last heartbeat

  function setTimeLeft(t) {
    var now = Date.now();
    sessionEnds = typeof t.session_s === "number" ? now + t.session_s * 1000 : null;
    idleEnds = typeof t.idle_s === "number" ? now + t.idle_s * 1000 : null;
    idleVerified = true;
    timeAsked = false;
    tick();
  }

  function clock(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function tick() {
    if (closedForGood || !gotState) { return; }
    var now = Date.now();
    var idleLeft = idleEnds === null ? Infinity : idleEnds - now;
    var sessionLeft = sessionEnds === null ? Infinity : sessionEnds - now;
    var warn = cfg.time_warnings;
    var idleSoon = warn.idle_s > 0 && idleLeft <= warn.idle_s * 1000;
    var sessionSoon = warn.session_s > 0 && sessionLeft <= warn.session_s * 1000;
    // Past a limit the server decides (and times out); near the idle one it is asked first,
    // since another tab of the participant may have been in use.
    if (!timeAsked && (idleLeft <= 0 || sessionLeft <= 0 || (idleSoon && !idleVerified))) {
      timeAsked = send({ type: "time" });
    }
    els.timeLeft.hidden = !sessionSoon;
    els.timeLeft.textContent = sessionSoon ? " · time left " + clock(sessionLeft) : "";
    var text = "";
    if (idleSoon && idleVerified && idleLeft <= sessionLeft) {
      text = "You have not used this page for a while. Your session ends in " + clock(idleLeft) +
        " unless you press “I'm still here” or go on writing.";
      els.stay.textContent = "I'm still here";
    } else if (sessionSoon && !sessionWarningClosed) {
      text = "The time limit for this study is near: your session ends in " + clock(sessionLeft) +
        ". Please finish your document and press Finish soon.";
      els.stay.textContent = "Keep writing";
    }
    els.timeWarning.hidden = !text;
    if (text) { els.timeWarningText.textContent = text; }
    els.stay.disabled = staySending || !connected;
  }

  function stay() {
    if (staySending) { return; }
    if (!els.timeWarning.hidden && els.stay.textContent === "Keep writing") { sessionWarningClosed = true; }
    staySending = send({ type: "stay" });
    tick();
  }

  els.stay.addEventListener("click", stay);
  ["keydown", "pointerdown", "input", "wheel", "touchstart"].forEach(function (kind) {
    document.addEventListener(kind, function (ev) {
      acted = true;
      // Using the page while the idle warning shows answers it at once.
      if (ev.target !== els.stay && idleVerified && !els.timeWarning.hidden &&
          els.stay.textContent === "I'm still here") { stay(); }
    }, { capture: true, passive: true });
  });
  setInterval(tick, 1000);

  // What the participant typed and the server has not stored: kept in this tab for the
  // outcome page to show back (nothing leaves the browser).
  function keepTyped() {
    var kept = {};
    var message = pendingSend ? pendingSend.text : els.input.value;
    if (message.trim()) { kept.message = message; }
    if (docLoaded && els.doc.value !== docSavedText) { kept.document = els.doc.value; }
    if (!kept.message && !kept.document) { return; }
    try { sessionStorage.setItem(cfg.kept_key, JSON.stringify(kept)); } catch (e) { /* storage off */ }
  }

  // -- phones: one view at a time -----------------------------------------------------------
  function showView(view) {
    els.workspace.dataset.view = view;
    els.tabChat.setAttribute("aria-selected", String(view === "chat"));
    els.tabDoc.setAttribute("aria-selected", String(view === "doc"));
    if (view === "chat") { scrollChat(); }
  }
  els.tabChat.addEventListener("click", function () { showView("chat"); });
  els.tabDoc.addEventListener("click", function () { showView("doc"); });

  refresh();
  connect();
})();
