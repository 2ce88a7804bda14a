/*! crmsync web form script, v1. Served by crmsync at /static/crmsync/form.v1.js; no dependencies.
 *
 * Progressively enhances a plain form that posts straight to a crmsync intake URL:
 *
 *   <form action="https://crm.example.com/api/v1/sources/website/submissions" method="post" data-crmsync>
 *     ... your fields ...
 *     <button type="submit">Send</button>
 *   </form>
 *   <script src="https://crm.example.com/static/crmsync/form.v1.js" defer></script>
 *
 * Without this script the form still works: the browser posts it and crmsync answers with a
 * 303 to the source's thank-you (or error) page. With it:
 * - a key is made when the page loads (crypto.randomUUID) into the hidden field crmsync reads
 *   (`_idempotency_key`, or the name in data-crmsync-key-field), so a retried or repeated post
 *   of this page's form is stored once;
 * - the form is sent with fetch; a dropped connection or a server error is retried with the
 *   same key (1, 2, 4, 8 s), so nothing is lost and nothing is doubled;
 * - the submit buttons are disabled while sending, so a double click sends once;
 * - a refusal is shown in words: its detail above the buttons, and each message of its
 *   "fields" beside the field it names;
 * - on success the visitor goes to the source's thank-you page (the answer's "redirect"), or
 *   the form says thank you in place (data-crmsync-thanks sets the words).
 */
(function () {
  "use strict";

  var DEFAULT_KEY_FIELD = "_idempotency_key";
  var RETRY_DELAYS_MS = [1000, 2000, 4000, 8000];
  var TEXT = {
    failed: "Your message could not be sent. Please check your connection and try again.",
    thanks: "Thank you! We received your message.",
  };

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // Pages served over plain http (not a secure context) have getRandomValues only: a v4 UUID.
    var bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function keyInput(form) {
    var name = form.getAttribute("data-crmsync-key-field") || DEFAULT_KEY_FIELD;
    var input = form.querySelector('input[name="' + name + '"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    return input;
  }

  function buttons(form) {
    return form.querySelectorAll('button:not([type="button"]):not([type="reset"]), input[type="submit"]');
  }

  function setBusy(form, busy) {
    form.setAttribute("aria-busy", busy ? "true" : "false");
    Array.prototype.forEach.call(buttons(form), function (button) { button.disabled = busy; });
  }

  function messageBox(form) {
    var box = form.querySelector("[data-crmsync-message]");
    if (!box) {
      box = document.createElement("p");
      box.setAttribute("data-crmsync-message", "");
      box.className = "crmsync-message";
      var first = buttons(form)[0];
      form.insertBefore(box, first || null);
    }
    return box;
  }

  function say(form, text, role) {
    var box = messageBox(form);
    box.setAttribute("role", role);
    box.textContent = text;
  }

  function clearMessages(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".crmsync-field-error"), function (el) { el.remove(); });
    Array.prototype.forEach.call(form.querySelectorAll('[aria-invalid="true"]'), function (el) {
      el.removeAttribute("aria-invalid");
    });
    var box = form.querySelector("[data-crmsync-message]");
    if (box) { box.textContent = ""; }
  }

  function showFieldErrors(form, fields) {
    Object.keys(fields || {}).forEach(function (name, index) {
      var field = form.elements.namedItem(name);
      if (field && !field.name && field.length) { field = field[0]; } // a radio or checkbox group
      if (!field || !field.parentNode) { return; }
      var note = document.createElement("span");
      note.className = "crmsync-field-error";
      note.id = "crmsync-error-" + index + "-" + String(name).replace(/[^A-Za-z0-9_-]/g, "_");
      note.textContent = String(fields[name]);
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-describedby", note.id);
      field.parentNode.insertBefore(note, field.nextSibling);
    });
  }

  function body(form, submitter) {
    var data;
    try { data = new FormData(form, submitter); } catch (error) { data = new FormData(form); }
    // Form-encoded unless the form sends files: both are "simple" requests, no CORS preflight.
    return (form.enctype === "multipart/form-data") ? data : new URLSearchParams(data);
  }

  function wait(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function retryAfterMs(response, attempt) {
    var seconds = Number(response && response.headers.get("Retry-After"));
    return seconds > 0 && seconds <= 30 ? seconds * 1000 : RETRY_DELAYS_MS[attempt];
  }

  // Resolves with the answer to act on, or null when every attempt failed to get one.
  function send(form, payload, attempt) {
    return fetch(form.action, {
      method: "POST",
      body: payload,
      headers: { "Accept": "application/json" },
      credentials: "omit",
      mode: "cors",
    }).then(function (response) {
      var retriable = response.status >= 500 || response.status === 429;
      if (retriable && attempt < RETRY_DELAYS_MS.length) {
        return wait(retryAfterMs(response, attempt)).then(function () { return send(form, payload, attempt + 1); });
      }
      return response;
    }, function () {
      // No answer at all (connection dropped, offline): the same key makes the retry safe.
      if (attempt >= RETRY_DELAYS_MS.length) { return null; }
      return wait(RETRY_DELAYS_MS[attempt]).then(function () { return send(form, payload, attempt + 1); });
    });
  }

  function readJson(response) {
    return response.json().catch(function () { return {}; });
  }

  function succeeded(form, answer, key) {
    if (answer && typeof answer.redirect === "string" && answer.redirect) {
      window.location.assign(answer.redirect);
      return;
    }
    say(form, form.getAttribute("data-crmsync-thanks") || TEXT.thanks, "status");
    key.value = newKey(); // anything sent from here on is a new submission
    setBusy(form, false);
  }

  function refused(form, answer) {
    say(form, (answer && answer.detail) || TEXT.failed, "alert");
    showFieldErrors(form, answer && answer.fields);
    setBusy(form, false); // the key stays: nothing was stored, so the corrected form may reuse it
  }

  function enhance(form) {
    if (form.getAttribute("data-crmsync-ready")) { return; }
    form.setAttribute("data-crmsync-ready", "true");
    var key = keyInput(form);
    if (!key.value) { key.value = newKey(); }
    var sending = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (sending) { return; }
      sending = true;
      clearMessages(form);
      var payload = body(form, event.submitter);
      setBusy(form, true);
      send(form, payload, 0).then(function (response) {
        if (!response) { refused(form, null); return null; }
        return readJson(response).then(function (answer) {
          if (response.ok) { succeeded(form, answer, key); } else { refused(form, answer); }
        });
      }).catch(function () { refused(form, null); }).then(function () { sending = false; });
    });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-crmsync]"), enhance);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
