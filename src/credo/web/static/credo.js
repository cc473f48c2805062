/* credo: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    /* Move focus to a form's error summary so screen readers announce it. */
    var summary = document.getElementById("form-errors");
    if (summary) { summary.focus(); }
    /* Ask before irreversible actions (buttons marked data-confirm). */
    document.querySelectorAll("[data-confirm]").forEach(function (el) {
      el.addEventListener("click", function (event) {
        if (!window.confirm(el.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
    /* Show the count of characters left in text areas with a maxlength. */
    document.querySelectorAll("textarea[maxlength]").forEach(function (area) {
      var note = document.createElement("p");
      note.className = "hint";
      note.setAttribute("aria-live", "polite");
      area.insertAdjacentElement("afterend", note);
      var update = function () {
        var left = Number(area.getAttribute("maxlength")) - area.value.length;
        note.textContent = left + " characters left";
      };
      area.addEventListener("input", update);
      update();
    });
  });
})();
