// Validates the query language as it is typed, through GET /api/query/check.
// The pages work without this file; it only shows the caret sooner.
"use strict";
(function () {
  function watch(field) {
    var out = field.parentElement.parentElement.querySelector(".live-check") ||
      field.form.querySelector(".live-check");
    var timer = null;
    field.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var lines = field.value.split("\n").filter(function (l) { return l.trim(); });
        if (!lines.length) { out.textContent = ""; return; }
        Promise.all(lines.map(function (line) {
          var url = field.dataset.check;
          return fetch(url + (url.indexOf("?") < 0 ? "?" : "&") + "q=" + encodeURIComponent(line), { credentials: "same-origin" })
            .then(function (r) { return r.json(); });
        })).then(function (answers) {
          var bad = answers.map(function (a, i) {
            return a.ok ? "" : (lines.length > 1 ? "line " + (i + 1) + ": " : "") + a.caret;
          }).filter(Boolean);
          out.textContent = bad.join("\n");
        }).catch(function () { out.textContent = ""; });
      }, 300);
    });
  }
  document.querySelectorAll("[data-check]").forEach(watch);
})();
