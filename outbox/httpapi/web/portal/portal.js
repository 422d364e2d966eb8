// outboxd portal: small progressive enhancements. Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons copy the text of the element they name (a secret shown once).
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copy);
      if (!source) return;
      var text = source.textContent.trim();
      button.setAttribute("aria-live", "polite");
      var done = function () { button.textContent = "Copied"; };
      // The older way, for plain HTTP and browsers that refuse the clipboard
      // API (an unfocused window); the text stays selected to copy by hand.
      var fallback = function () {
        select(source);
        var copied = false;
        try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
        button.textContent = copied ? "Copied" : "Selected: press Ctrl+C";
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, fallback);
      } else {
        fallback();
      }
    });
  });
  // Forms that change a lot ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
});

function select(element) {
  var range = document.createRange();
  range.selectNodeContents(element);
  var selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}
