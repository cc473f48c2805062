/* credo: check a form as you type against the server's own rules.
 *
 * A form with data-validate="URL" is posted (with its CSRF token) to URL a moment after
 * each change; the answer is {"errors": {field: message}}. Each message is shown under its
 * field, tied to it with aria-describedby and aria-invalid, for the fields the person has
 * already touched. The server checks again when the form is sent: this only saves a trip.
 */
(function () {
  "use strict";

  function describedBy(input, id, on) {
    var ids = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (x) {
      return x && x !== id;
    });
    if (on) { ids.push(id); }
    if (ids.length) { input.setAttribute("aria-describedby", ids.join(" ")); }
    else { input.removeAttribute("aria-describedby"); }
  }

  function show(input, message) {
    var box = input.closest(".field");
    if (!box || !input.id) { return; }
    var id = input.id + "-error";
    var note = document.getElementById(id);
    if (message) {
      if (!note) {
        note = document.createElement("p");
        note.className = "error-text";
        note.id = id;
        box.appendChild(note);
      }
      note.textContent = message;
      input.setAttribute("aria-invalid", "true");
      box.classList.add("invalid");
      describedBy(input, id, true);
    } else {
      if (note) { note.parentNode.removeChild(note); }
      input.removeAttribute("aria-invalid");
      box.classList.remove("invalid");
      describedBy(input, id, false);
    }
  }

  function watch(form) {
    var url = form.getAttribute("data-validate");
    var status = document.getElementById("check-status");
    var touched = {};
    var timer = null;
    var asked = 0;

    function check() {
      var mine = ++asked;
      window.fetch(url, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { "Accept": "application/json" }
      }).then(function (answer) {
        var kind = answer.headers.get("Content-Type") || "";
        return answer.ok && kind.indexOf("application/json") === 0 ? answer.json() : null;
      }).then(function (data) {
        if (!data || mine !== asked) { return; }
        var open = 0;
        Array.prototype.forEach.call(form.elements, function (el) {
          if (!el.name || el.type === "hidden" || !touched[el.name]) { return; }
          var message = data.errors[el.name] || "";
          if (message) { open += 1; }
          show(el, message);
        });
        if (status) {
          status.textContent = open ? open + (open === 1 ? " field needs" : " fields need") +
            " attention." : "No problems in the fields filled so far.";
        }
      }).catch(function () { /* the server checks on sending anyway */ });
    }

    function later(event, delay) {
      if (!event.target.name) { return; }
      touched[event.target.name] = true;
      window.clearTimeout(timer);
      timer = window.setTimeout(check, delay);
    }

    form.addEventListener("input", function (event) { later(event, 400); });
    form.addEventListener("change", function (event) { later(event, 50); });
    form.addEventListener("focusout", function (event) {
      if (event.target.value) { later(event, 50); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.fetch || !window.FormData) { return; }
    document.querySelectorAll("form[data-validate]").forEach(watch);
  });
})();
