// Live pages: the event feed (/ws/events/) and a payment's timeline
// (/ws/payments/<id>/). The pages ask for batch frames (?batch=1): a message
// is one {"type": "event", "position", "event"} with a Stripe event, or
// {"type": "batch", "frames": [event frame, ...]} holding one relay batch in
// order (one websocket message per batch costs the server far less than one
// per event; docs/events.md). Rows carry data-event-id so nothing shows
// twice (the page's own first paint, an htmx redraw, a replay after
// reconnecting).
(function () {
  "use strict";

  function amount(value, currency) {
    // Integer minor units to "1,234.56 USD" without floating point.
    if (value === undefined || value === null || !currency) return "";
    var digits;
    try {
      digits = new Intl.NumberFormat("en", { style: "currency", currency: currency.toUpperCase() }).resolvedOptions().maximumFractionDigits;
    } catch (e) { digits = 2; }
    var negative = value < 0;
    var text = String(Math.abs(value)).padStart(digits + 1, "0");
    var major = digits ? text.slice(0, -digits) : text;
    var minor = digits ? "." + text.slice(-digits) : "";
    return (negative ? "-" : "") + major.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + minor + " " + currency.toUpperCase();
  }

  function pad(n) { return String(n).padStart(2, "0"); }
  function utc(unix, withDate) {
    var d = new Date(unix * 1000);
    var time = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
    return withDate ? d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + time : time;
  }
  function cell(content, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    if (content instanceof Node) td.appendChild(content); else td.textContent = content || "";
    return td;
  }
  function code(text, muted) {
    var c = document.createElement("code");
    if (muted) c.className = "muted";
    c.textContent = text;
    return c;
  }
  function badge(status) {
    if (!status) return "";
    var span = document.createElement("span");
    span.className = "badge badge-" + status;
    span.dataset.status = "";
    span.textContent = status.replace(/_/g, " ");
    return span;
  }
  function paymentOf(obj) {
    if (!obj) return "";
    if (obj.object === "payment_intent") return obj.id;
    return typeof obj.payment_intent === "string" ? obj.payment_intent : "";
  }
  function matches(filter, type) {
    if (!filter) return true;
    if (filter.slice(-1) === "*") return type.indexOf(filter.slice(0, -1)) === 0;
    return type === filter;
  }

  // One websocket with resume: after a drop it reconnects with the last
  // event id it saw, and the server replays exactly what was missed.
  function subscribe(path, lastEventId, onEvent, onState) {
    var closed = false, socket = null, delay = 500;
    function open(cursor) {
      var url = new URL(path, location.href);
      url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("batch", "1");
      if (cursor) url.searchParams.set("last_event_id", cursor);
      socket = new WebSocket(url);
      socket.onopen = function () { delay = 500; onState("live"); };
      socket.onmessage = function (message) {
        var data = JSON.parse(message.data);
        var frames = data.type === "batch" ? data.frames : [data];
        frames.forEach(function (frame) {
          if (frame.type !== "event") return;
          lastEventId = frame.event.id;
          onEvent(frame.event);
        });
      };
      socket.onclose = function (event) {
        if (closed) return;
        if (event.code === 4409) { open(null); return; }  // cursor not published yet: start live
        if (event.code >= 4400 && event.code < 4500) { onState("refused"); return; }
        onState("reconnecting");
        setTimeout(function () { if (!closed) open(lastEventId); }, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open(lastEventId);
    return function () { closed = true; if (socket) socket.close(); };
  }

  // --- Live feed -------------------------------------------------------------
  var stopFeed = null, feedSection = null;
  function startFeed() {
    var section = document.getElementById("live-feed");
    if (section === feedSection) return;  // still the same table: keep its socket
    if (stopFeed) { stopFeed(); stopFeed = null; }
    feedSection = section;
    if (!section) return;
    var rows = document.getElementById("feed-rows");
    var empty = document.getElementById("feed-empty");
    var status = document.getElementById("feed-status");
    var pause = document.getElementById("feed-pause");
    var filter = section.dataset.feedType || "";
    var held = [];
    var paused = pause && pause.getAttribute("aria-pressed") === "true";

    function row(event) {
      var obj = (event.data && event.data.object) || {};
      var tr = document.createElement("tr");
      tr.dataset.eventId = event.id;
      tr.dataset.eventType = event.type;
      tr.className = "row-new";
      var time = document.createElement("time");
      time.dateTime = new Date(event.created * 1000).toISOString();
      time.textContent = utc(event.created, false);
      tr.appendChild(cell(time, "nowrap"));
      tr.appendChild(cell(code(event.type)));
      var payment = paymentOf(obj);
      if (payment) {
        var a = document.createElement("a");
        a.href = "/payments/" + encodeURIComponent(payment) + "/";
        a.textContent = obj.id;
        tr.appendChild(cell(a));
      } else {
        tr.appendChild(cell(code(obj.id || "")));
      }
      tr.appendChild(cell(obj.amount ? amount(obj.amount, obj.currency) : "", "num"));
      tr.appendChild(cell(badge(obj.status)));
      return tr;
    }
    function show(event) {
      if (rows.querySelector('tr[data-event-id="' + event.id + '"]')) return;
      rows.insertBefore(row(event), rows.firstChild);
      while (rows.children.length > 500) rows.removeChild(rows.lastChild);
      if (empty) empty.hidden = true;
    }
    function label(state) {
      if (!status) return;
      status.dataset.state = paused ? "paused" : state;
      status.textContent = paused ? "paused · " + held.length + " new" : state;
    }
    var state = "connecting…";
    if (pause) {
      pause.onclick = function () {
        paused = !paused;
        pause.setAttribute("aria-pressed", String(paused));
        pause.textContent = paused ? "Resume" : "Pause";
        if (!paused) { held.forEach(show); held = []; }
        label(state);
      };
    }
    stopFeed = subscribe(section.dataset.feedWs, section.dataset.lastEventId || null, function (event) {
      if (!matches(filter, event.type)) return;
      if (paused) { held.push(event); label(state); } else show(event);
    }, function (s) { state = s; label(s); });
  }

  // --- A payment's timeline ----------------------------------------------------
  var stopTimeline = null;
  function startTimeline() {
    var detail = document.getElementById("payment-detail");
    if (!detail || !detail.dataset.liveTimeline) return;
    if (stopTimeline) return;  // one socket per page; redraws keep it
    var lastId = detail.dataset.lastEventId || null;
    stopTimeline = subscribe(detail.dataset.liveTimeline, lastId, function (event) {
      var rows = document.getElementById("timeline-rows");
      if (!rows || rows.querySelector('tr[data-event-id="' + event.id + '"]')) return;
      var obj = (event.data && event.data.object) || {};
      var tr = document.createElement("tr");
      tr.dataset.eventId = event.id;
      tr.className = "row-new";
      tr.appendChild(cell(utc(event.created, true), "nowrap"));
      tr.appendChild(cell(code(event.type)));
      tr.appendChild(cell(badge(obj.status)));
      tr.appendChild(cell(obj.amount ? amount(obj.amount, obj.currency) : "", "num"));
      tr.appendChild(cell(code(event.id, true)));
      rows.appendChild(tr);
      if (obj.object === "payment_intent" && obj.status) {
        var head = document.querySelector("[data-live-status]");
        if (head) { head.textContent = ""; head.appendChild(badge(obj.status)); }
      }
    }, function (state) {
      timelineState = state;
      document.querySelectorAll("[data-live-indicator]").forEach(function (el) {
        el.dataset.state = state;
        el.textContent = state;
      });
    });
  }

  function start() { startFeed(); startTimeline(); }
  document.addEventListener("DOMContentLoaded", start);
  // An htmx swap may replace the feed (new filters: a new socket) or redraw
  // the payment (the socket stays; the redrawn indicator is told its state).
  var timelineState = "connecting…";
  document.addEventListener("htmx:afterSettle", function () {
    startFeed();
    document.querySelectorAll("[data-live-indicator]").forEach(function (el) {
      el.dataset.state = timelineState;
      el.textContent = timelineState;
    });
  });
})();
