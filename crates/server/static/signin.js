// Moves the pages on by themselves: follows a push challenge's status
// (server-sent events), waits for an authenticator activation, and on the
// help-desk console updates a challenge's timeline and tails the audit log.
(function () {
  "use strict";
  var challenge = document.getElementById("challenge");
  if (challenge) {
    var events = new EventSource("/api/v1/challenges/" + encodeURIComponent(challenge.dataset.id));
    events.addEventListener("status", function (e) {
      if (e.data !== "pending") {
        events.close();
        window.location.href = challenge.dataset.next + "?status=" + encodeURIComponent(e.data);
      }
    });
  }
  var activation = document.getElementById("activation");
  if (activation) {
    var poll = function () {
      fetch(activation.dataset.poll, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          if (s.activated) { window.location.href = activation.dataset.next; } else { setTimeout(poll, 1000); }
        })
        .catch(function () { setTimeout(poll, 2000); });
    };
    setTimeout(poll, 1000);
  }
  var timeline = document.getElementById("timeline");
  if (timeline) {
    var steps = new EventSource(timeline.dataset.events);
    steps.addEventListener("timeline", function (e) {
      var t = JSON.parse(e.data);
      t.steps.forEach(function (st) {
        var li = timeline.querySelector('li[data-step="' + st.step + '"]');
        if (!li) { return; }
        li.className = st.at ? "done" : "missing";
        li.querySelector(".when").textContent = st.at || "\u2014";
        li.querySelector(".detail").textContent = st.detail;
      });
      document.getElementById("timeline-status").textContent = "Status: " + t.status.replace(/_/g, " ");
      if (!t.open) { steps.close(); }
    });
  }
  var audit = document.getElementById("audit");
  if (audit) {
    var tail = new EventSource(audit.dataset.tail);
    tail.addEventListener("row", function (e) {
      var r = JSON.parse(e.data);
      var tr = document.createElement("tr");
      [r.seq, r.at, r.actor, r.action, r.target, r.outcome, r.detail].forEach(function (v) {
        var td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      });
      tr.className = "new";
      audit.tBodies[0].insertBefore(tr, audit.tBodies[0].firstChild);
    });
  }
})();
