/*
 * Live updates for the dashboard, without inline script or eval (the CSP allows neither).
 *
 * Elements marked `data-poll` poll with htmx (`hx-trigger="every Ns, dashboard:refresh"`). This file:
 * - cancels their requests while the page is hidden or staff paused updates, and asks every poller
 *   for fresh data at once when the page becomes visible again or updates resume;
 * - keeps "updated N s ago" current;
 * - shows each <time data-local-time> in the viewer's local time on hover.
 */
(function () {
  "use strict";

  var PAUSE_KEY = "dashboard:paused";
  var lastUpdated = Date.now();
  var lastFailed = false;

  function isPaused() {
    try { return window.sessionStorage.getItem(PAUSE_KEY) === "1"; } catch (e) { return false; }
  }

  function setPaused(paused) {
    try { window.sessionStorage.setItem(PAUSE_KEY, paused ? "1" : "0"); } catch (e) { /* private mode */ }
    renderPauseButton();
    if (!paused) { refreshAll(); }
  }

  function refreshAll() {
    if (!window.htmx) { return; }
    document.querySelectorAll("[data-poll]").forEach(function (el) {
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

  function renderUpdated() {
    var label = document.getElementById("updated-ago");
    if (!label) { return; }
    var seconds = Math.max(0, Math.round((Date.now() - lastUpdated) / 1000));
    var text = seconds < 2 ? "updated just now" : "updated " + seconds + " s ago";
    if (lastFailed) { text += " (last try failed)"; }
    if (isPaused()) { text += ", paused"; }
    label.textContent = text;
  }

  function isPoller(el) {
    return el && el.closest && el.closest("[data-poll]") === el;
  }

  function localTimes(root) {
    (root || document).querySelectorAll("time[data-local-time]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        el.title = "Your local time: " + when.toLocaleString();
      }
    });
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (isPoller(event.detail.elt) && (document.hidden || isPaused())) {
      event.preventDefault();  // no request while nobody looks, or while paused
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (!isPoller(event.detail.elt)) { return; }
    var xhr = event.detail.xhr;
    var status = xhr ? xhr.status : 0;
    // A panel that shows a failure banner (over its last good data) still answers 200.
    var degraded = xhr && xhr.getResponseHeader("X-Dashboard-Degraded") === "1";
    lastFailed = degraded || !(status === 200 || status === 204 || status === 286);
    if (!lastFailed) { lastUpdated = Date.now(); }
    renderUpdated();
  });

  document.addEventListener("htmx:load", function (event) { localTimes(event.detail.elt); });

  // An upstream image_url that does not load (gone, or unreachable from here) is hidden rather
  // than shown as a broken image. Error events do not bubble: listen in the capture phase.
  document.addEventListener("error", function (event) {
    if (event.target && event.target.tagName === "IMG") { event.target.hidden = true; }
  }, true);

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !isPaused()) { refreshAll(); }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#pause-toggle");
    if (button) { setPaused(!isPaused()); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    renderPauseButton();
    localTimes(document);
    window.setInterval(renderUpdated, 1000);
  });
})();
