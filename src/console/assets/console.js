// Tributary console: the live parts. Everything else is plain HTML forms and links.
// - Overview: replaces #overview-live with each fragment the server pushes (SSE).
// - Live tail: opens the event stream for the filter form, lists events newest first, each
//   expandable to its canonical JSON; pause closes the stream and resume reopens it after the
//   last sequence shown.
// - Dead letters: the "select all" box.
// Text from events is inserted with textContent only, never as markup.
"use strict";

(function () {
  function overview() {
    var live = document.getElementById("overview-live");
    if (!live || !window.EventSource) return;
    var source = new EventSource(live.getAttribute("data-live"));
    source.addEventListener("overview", function (e) {
      live.innerHTML = e.data; // the server's own rendering (escaped by the template)
    });
  }

  var MAX_ROWS = 500;

  function tail() {
    var list = document.getElementById("tail-events");
    var form = document.getElementById("tail-form");
    if (!list || !form) return;
    var status = document.getElementById("tail-status");
    var pause = document.getElementById("tail-pause");
    var clear = document.getElementById("tail-clear");
    var source = null;
    var paused = false;
    var lastSequence = 0;
    var count = 0;

    function say(text) { status.textContent = text; }

    function query(resume) {
      var params = new URLSearchParams(new FormData(form));
      if (resume) {
        params.set("from", "after");
        params.set("sequence", String(lastSequence));
      }
      return list.getAttribute("data-stream") + "?" + params.toString();
    }

    function row(event) {
      var item = document.createElement("li");
      item.className = "event";
      item.setAttribute("data-sequence", event.sequence);
      var details = document.createElement("details");
      var summary = document.createElement("summary");
      var parts = [
        ["seq", "#" + event.sequence],
        ["time", (event.receivedAt || event.time || "").replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC")],
        ["source", event.source],
        ["type", event.type],
        ["subject", event.subject || ""]
      ];
      parts.forEach(function (p) {
        var span = document.createElement("span");
        span.className = p[0];
        span.textContent = p[1];
        summary.appendChild(span);
      });
      var pre = document.createElement("pre");
      pre.className = "json";
      pre.tabIndex = 0;
      pre.textContent = JSON.stringify(event, null, 2);
      details.appendChild(summary);
      details.appendChild(pre);
      var page = document.createElement("a");
      page.href = "/console/events/" + event.sequence;
      page.className = "event-link";
      page.textContent = "Event page";
      details.appendChild(page);
      if (event.rawId && event.rawId !== "0") {
        var link = document.createElement("a");
        link.href = "/console/raw/" + event.sequence;
        link.className = "raw-link";
        link.textContent = "Raw webhook as received";
        details.appendChild(link);
      }
      item.appendChild(details);
      return item;
    }

    function open(resume) {
      if (source) source.close();
      say("Connecting…");
      source = new EventSource(query(resume));
      source.onopen = function () { say("Live: waiting for events (" + count + " shown)."); };
      source.addEventListener("event", function (e) {
        var event;
        try { event = JSON.parse(e.data); } catch (err) { return; }
        lastSequence = Number(event.sequence) || lastSequence;
        list.insertBefore(row(event), list.firstChild);
        count += 1;
        while (list.children.length > MAX_ROWS) list.removeChild(list.lastChild);
        say("Live: " + count + " event(s) shown, last #" + event.sequence + ".");
      });
      source.addEventListener("problem", function (e) {
        source.close();
        say("Stopped: " + e.data);
      });
      source.onerror = function () {
        if (source.readyState === EventSource.CLOSED) say("Disconnected. Apply the filter again to reconnect.");
        else say("Reconnecting…");
      };
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      list.textContent = "";
      count = 0;
      lastSequence = 0;
      paused = false;
      pause.textContent = "Pause";
      pause.setAttribute("aria-pressed", "false");
      open(false);
    });
    pause.addEventListener("click", function () {
      paused = !paused;
      pause.setAttribute("aria-pressed", paused ? "true" : "false");
      if (paused) {
        if (source) source.close();
        pause.textContent = "Resume";
        say("Paused after #" + lastSequence + ".");
      } else {
        pause.textContent = "Pause";
        open(lastSequence > 0);
      }
    });
    clear.addEventListener("click", function () {
      list.textContent = "";
      count = 0;
    });
    open(false);
  }

  function selectAll() {
    var all = document.getElementById("select-all");
    if (!all) return;
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=ids]").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    overview();
    tail();
    selectAll();
  });
})();
