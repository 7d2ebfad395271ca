/*
 * Live updates for the dashboard, without inline script or eval (the CSP allows neither).
 *
 * Elements marked `data-poll` poll with htmx (`hx-trigger="every Ns, dashboard:refresh"`). A page
 * that follows a stream (`sse-connect`, htmx's SSE extension) also fetches them when the stream
 * says something changed (`sse:events` and the like). This file:
 * - while the stream is open, skips the timed polls (the stream tells when to fetch); when it
 *   cannot connect or drops, lets them run again, and asks every poller at once whenever it
 *   (re)opens, since notices sent while it was away are lost;
 * - cancels their requests while the page is hidden or staff paused updates, and asks every poller
 *   for fresh data at once when the page becomes visible again or updates resume;
 * - keeps the live status current: pushed or polling, "updated N s ago", and whether the last try
 *   failed;
 * - shows each <time data-local-time> in UTC (as the server renders it) or in the viewer's local
 *   time, as staff chose with the header's switch (remembered in localStorage);
 * - labels table cells with their column's header, for the stacked layout of narrow screens.
 */
(function () {
  "use strict";

  var PAUSE_KEY = "dashboard:paused";
  var TIME_KEY = "dashboard:time-zone";  // "local", or anything else for UTC
  var lastUpdated = Date.now();
  // The page's stream: "none" (the page polls: no stream, or a server that cannot stream),
  // "connecting", "open" (pushed: timed polls are skipped) or "down" (polling until it reopens).
  var stream = "none";
  // Poller id -> true while that poller's last try failed. "Updated" resets only when none is
  // failing, so one panel's success does not hide another's outage.
  var failing = {};

  function stored(storage, key) {
    try { return window[storage].getItem(key); } catch (e) { return null; }  // storage disabled
  }

  function store(storage, key, value) {
    try { window[storage].setItem(key, value); } catch (e) { /* private mode: not remembered */ }
  }

  // --- pause and resume

  function isPaused() { return stored("sessionStorage", PAUSE_KEY) === "1"; }

  function setPaused(paused) {
    store("sessionStorage", PAUSE_KEY, paused ? "1" : "0");
    renderPauseButton();
    if (!paused) { refreshAll(); }
  }

  function refreshAll(reopened) {
    if (!window.htmx) { return; }
    document.querySelectorAll("[data-poll]").forEach(function (el) {
      if (reopened === false && el.hasAttribute("data-refresh-on-reopen")) { return; }
      window.htmx.trigger(el, "dashboard:refresh");
    });
  }

  function renderPauseButton() {
    var button = document.getElementById("pause-toggle");
    if (!button) { return; }
    var paused = isPaused();
    button.setAttribute("aria-pressed", paused ? "true" : "false");
    button.textContent = paused ? "Resume live updates" : "Pause live updates";
    document.body.classList.toggle("live-paused", paused);
    renderUpdated();
  }

  // --- "updated N s ago"

  function renderMode() {
    var mode = document.getElementById("live-mode");
    var status = document.getElementById("live-status");
    if (!mode || !status) { return; }
    var seconds = status.getAttribute("data-refresh-seconds");
    if (stream === "open") {
      mode.textContent = "Live: pushed";
    } else if (stream === "down") {
      mode.textContent = "Live: polling every " + seconds + " s (push unavailable)";
    } else {
      mode.textContent = "Live: every " + seconds + " s";
    }
    status.setAttribute("data-mode", stream === "open" ? "pushed" : "polling");
  }

  function renderUpdated() {
    var label = document.getElementById("updated-ago");
    if (!label) { return; }
    Object.keys(failing).forEach(function (id) {
      if (!document.getElementById(id)) { delete failing[id]; }  // that panel is gone
    });
    var seconds = Math.max(0, Math.round((Date.now() - lastUpdated) / 1000));
    var text = seconds < 2 ? "updated just now" : "updated " + seconds + " s ago";
    // An open stream is the news: with nothing to tell, the page is current as of now.
    if (stream === "open" && !Object.keys(failing).length) { text = "up to date"; }
    if (Object.keys(failing).length) { text += " (last try failed)"; }
    if (isPaused()) { text += ", paused"; }
    label.textContent = text;
  }

  function pollFailed(xhr) {
    // A panel that shows a failure banner over its last good data still answers 200.
    if (xhr.getResponseHeader("X-Dashboard-Degraded") === "1") { return true; }
    // 0 is a network error or a timeout; 286 is htmx's "stop polling" (the conversation is over).
    return !(xhr.status === 200 || xhr.status === 204 || xhr.status === 286);
  }

  // Count a poll by its own request, not by the element an htmx event names afterwards: once an
  // outerHTML swap has replaced the poller, htmx announces the end of the request on a parent
  // (#content-main), and a check on the event's element would never see a refresh.
  function watchPoll(poller, xhr) {
    var id = poller.id;
    var aborted = false;
    xhr.addEventListener("abort", function () { aborted = true; });
    xhr.addEventListener("loadend", function () {  // after htmx's own load handler swapped
      if (aborted) { return; }  // htmx dropped it (e.g. a newer request): neither good nor bad
      if (pollFailed(xhr)) {
        failing[id] = true;
      } else {
        delete failing[id];
        if (!Object.keys(failing).length) { lastUpdated = Date.now(); }
      }
      renderUpdated();
    });
  }

  function isPoller(el) {
    return el && el.hasAttribute && el.hasAttribute("data-poll");
  }

  // --- new events: each shown once, counted while out of sight, and the reader's place kept

  var EVENT_ROWS = "event-rows";
  var unseen = [];  // new rows added out of the reader's sight, oldest first
  var anchor = null;  // the first row in view before a swap, and where it was

  // Seen: at least half of the row on screen (a sliver at an edge, above what the reader reads,
  // is not read).
  function inView(row) {
    var box = row.getBoundingClientRect();
    var shown = Math.min(box.bottom, window.innerHeight) - Math.max(box.top, 0);
    return shown > 0 && shown >= box.height / 2;
  }

  // The first event row in view and where it is, to keep it there through a change above it;
  // null at the top of the page (new rows push in there).
  function firstRowInView(container) {
    var rows = container && container.querySelectorAll("tr.event-row");
    if (!rows || window.scrollY <= 0) { return null; }
    for (var i = 0; i < rows.length; i++) {
      var top = rows[i].getBoundingClientRect().top;
      if (top >= 0) { return { row: rows[i], top: top }; }
    }
    return null;
  }

  function keepInPlace(kept) {
    if (kept && document.body.contains(kept.row)) {
      window.scrollBy(0, kept.row.getBoundingClientRect().top - kept.top);
    }
  }

  function renderNewMarker() {
    var marker = document.getElementById("new-events");
    if (!marker) { return; }
    unseen = unseen.filter(function (row) { return document.body.contains(row) && !inView(row); });
    var text = unseen.length === 1 ? "1 new event" : unseen.length + " new events";
    if (marker.hidden === !unseen.length && marker.textContent === text) { return; }
    // The marker sits above the rows: showing or hiding it must not move what the reader reads
    // (where the browser does not anchor the scroll position by itself).
    var kept = firstRowInView(document.getElementById(EVENT_ROWS));
    marker.hidden = !unseen.length;
    marker.textContent = text;
    keepInPlace(kept);
  }

  function isEventRows(target) { return target && target.id === EVENT_ROWS; }

  // The event rows, when a swap of `target` could move them: the rows themselves, or a region
  // above them (the header, the timeline) whose new height would push them up or down.
  function rowsMovedBy(target) {
    var rows = document.getElementById(EVENT_ROWS);
    if (!rows || !target || !target.compareDocumentPosition) { return null; }
    if (target === rows) { return rows; }
    var following = target.compareDocumentPosition(rows) & Node.DOCUMENT_POSITION_FOLLOWING;
    return following && !target.contains(rows) ? rows : null;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var rows = rowsMovedBy(event.detail.target);
    anchor = rows ? firstRowInView(rows) : null;
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!isEventRows(target)) {
      keepInPlace(anchor);  // a region above the rows changed height: the reader stays put
      anchor = null;
      return;
    }
    // A notice and a poll can both bring the same event: keep its first row only.
    var seen = {};
    Array.prototype.slice.call(target.querySelectorAll("tr.event-row")).forEach(function (row) {
      if (seen[row.id]) { row.parentNode.removeChild(row); } else { seen[row.id] = true; }
    });
    keepInPlace(anchor);  // stay put
    anchor = null;
    Array.prototype.slice.call(target.querySelectorAll("tr.event-new:not([data-counted])"))
      .forEach(function (row) {
        row.setAttribute("data-counted", "");
        if (!inView(row)) { unseen.push(row); }
      });
    renderNewMarker();
  });

  window.addEventListener("scroll", function () { if (unseen.length) { renderNewMarker(); } },
    { passive: true });

  // --- UTC or local time

  function showLocal() { return stored("localStorage", TIME_KEY) === "local"; }

  function pad(number, width) {
    var text = String(Math.abs(number));
    while (text.length < (width || 2)) { text = "0" + text; }
    return text;
  }

  // "UTC+05:30": how far the viewer's clock is from UTC at that moment (summer time included).
  function offsetText(when) {
    var offset = -when.getTimezoneOffset();  // minutes ahead of UTC
    return "UTC" + (offset < 0 ? "-" : "+") + pad(Math.floor(Math.abs(offset) / 60)) + ":" +
      pad(Math.abs(offset) % 60);
  }

  // The server's format ("2024-05-01 12:03:07 UTC"), in local time with its offset from UTC.
  function localText(when) {
    return pad(when.getFullYear(), 4) + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) +
      " " + pad(when.getHours()) + ":" + pad(when.getMinutes()) + ":" + pad(when.getSeconds()) +
      " " + offsetText(when);
  }

  function renderTimes(root) {
    var local = showLocal();
    var times = Array.prototype.slice.call(root.querySelectorAll("time[data-local-time]"));
    if (root.matches && root.matches("time[data-local-time]")) { times.push(root); }
    times.forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) { return; }
      if (!el.hasAttribute("data-utc-text")) {  // first sight: keep the server's UTC rendering
        el.setAttribute("data-utc-text", el.textContent);
        el.setAttribute("data-utc-title", el.title);
      }
      el.textContent = local ? localText(when) : el.getAttribute("data-utc-text");
      el.title = local ? el.getAttribute("data-utc-title") : "Your local time: " + localText(when);
    });
  }

  function renderTimeSwitch() {
    var local = showLocal();
    var button = document.getElementById("time-toggle");
    if (button) {
      button.hidden = false;  // it does nothing without this script, so it starts hidden
      button.setAttribute("aria-pressed", local ? "true" : "false");
    }
    var note = document.getElementById("time-note");
    if (note) {
      note.textContent = local
        ? "Times are your local time (" + offsetText(new Date()) + "); hover one to see UTC."
        : "Times are UTC; hover one to see your local time.";
    }
  }

  function setLocal(local) {
    store("localStorage", TIME_KEY, local ? "local" : "utc");
    renderTimeSwitch();
    renderTimes(document);
  }

  // --- stacked tables on narrow screens

  // Give each body cell its column's header as `data-label`, which the narrow-screen CSS shows
  // before the value once the table's rows are stacked as cards.
  function labelCells(root) {
    var tables = Array.prototype.slice.call(root.querySelectorAll("table"));
    var own = root.closest && root.closest("table");  // rows swapped into an existing table
    if (own) { tables.push(own); }
    tables.forEach(function (table) {
      var headers = table.querySelectorAll("thead th");
      if (!headers.length) { return; }
      table.querySelectorAll("tbody tr").forEach(function (row) {
        Array.prototype.forEach.call(row.cells, function (cell, index) {
          if (cell.colSpan === 1 && headers[index] && !cell.hasAttribute("data-label")) {
            cell.setAttribute("data-label", headers[index].textContent.trim());
          }
        });
      });
    });
  }

  // --- wiring

  document.addEventListener("htmx:beforeRequest", function (event) {
    var poller = event.detail.elt;
    if (!isPoller(poller)) { return; }
    if (document.hidden || isPaused()) {
      event.preventDefault();  // no request while nobody looks, or while paused
      return;
    }
    // A timed poll has no triggering event; a notice or a refresh has one. While the stream is
    // open, the timer has nothing to add, except for a panel whose last try failed (a banner over
    // old data, an events tab that could not load): no notice would retry it.
    var config = event.detail.requestConfig;
    var timed = !(config && config.triggeringEvent);
    if (stream === "open" && timed && !failing[poller.id] && !poller.hasAttribute("data-retry")) {
      event.preventDefault();
      return;
    }
    watchPoll(poller, event.detail.xhr);
  });

  // --- the stream (htmx's SSE extension announces its state on the sse-connect element)

  var everOpen = false;

  function setStream(state) {
    var was = stream;
    stream = state;
    renderMode();
    renderUpdated();
    if (state === "open") {
      lastUpdated = Date.now();
      // Opened or reopened: what changed before (or between) is not on the stream: fetch it. A
      // panel marked data-refresh-on-reopen (a costly one, whose data rarely changes between the
      // page load and its stream opening) waits for a reopen.
      if (!document.hidden && !isPaused()) { refreshAll(everOpen); }
      everOpen = true;
    } else if (state === "down" && was === "open" && !document.hidden && !isPaused()) {
      refreshAll();  // dropped: poll at once, then on the timer until it reopens
    }
  }

  document.addEventListener("htmx:sseOpen", function (event) {
    // The user's role changed (personal data shown or masked now): the page loads again, so
    // that all of it, not only the live panels, is shown as the new role may see it.
    var source = event.detail && event.detail.source;
    if (source && !source.dashboardReload) {
      source.dashboardReload = true;
      source.addEventListener("reload", function () { window.location.reload(); });
    }
    setStream("open");
  });
  document.addEventListener("htmx:sseError", function () { setStream("down"); });
  document.addEventListener("htmx:sseClose", function () { setStream("down"); });

  document.addEventListener("htmx:load", function (event) {
    renderTimes(event.detail.elt);
    labelCells(event.detail.elt);
  });

  // An upstream image_url that does not load (gone, or unreachable from here) is hidden rather
  // than shown as a broken image. Error events do not bubble: listen in the capture phase.
  document.addEventListener("error", function (event) {
    if (event.target && event.target.tagName === "IMG") { event.target.hidden = true; }
  }, true);

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !isPaused()) { refreshAll(); }
  });

  document.addEventListener("click", function (event) {
    if (!event.target.closest) { return; }
    if (event.target.closest("#pause-toggle")) { setPaused(!isPaused()); }
    if (event.target.closest("#time-toggle")) { setLocal(!showLocal()); }
    if (event.target.closest("#new-events") && unseen.length) {
      unseen[0].scrollIntoView({ block: "center" });
      unseen = [];
      renderNewMarker();
    }
  });

  // Another tab of the dashboard changed the time switch: follow it.
  window.addEventListener("storage", function (event) {
    if (event.key === TIME_KEY) { renderTimeSwitch(); renderTimes(document); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("[data-stream]")) { stream = "connecting"; }
    renderMode();
    renderPauseButton();
    renderTimeSwitch();
    renderTimes(document);
    labelCells(document);
    window.setInterval(renderUpdated, 1000);
  });
})();
