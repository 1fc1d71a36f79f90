// Moves the sign-in pages on by themselves: follows a push challenge's
// status (server-sent events) and waits for an authenticator activation.
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
})();
