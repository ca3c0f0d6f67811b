// delite serve: live updates (server-sent events) and actions. No inline script, no external resource:
// everything the server sends is escaped HTML or JSON, and text from a log is only ever set as textContent.
"use strict";

(function () {
  const csrf = (document.querySelector('meta[name="delite-csrf"]') || {}).content || "";
  const article = document.querySelector("article.execution");

  function flash(kind, message) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.className = kind;
    box.textContent = message;
  }

  function api(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-delite-csrf": csrf },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().then(function (payload) { return { status: r.status, payload: payload }; },
        function () { return { status: r.status, payload: {} }; });
    });
  }

  // What a form sends, by action.
  function bodyOf(action, form) {
    const f = new FormData(form);
    const get = function (name) { const v = f.get(name); return v === null ? null : String(v); };
    if (action === "approve" || action === "reject") {
      return { calls: f.getAll("call").map(String), reason: get("reason") || null };
    }
    if (action === "input") return { text: get("text") || "" };
    if (action === "tool-results") {
      const results = {};
      for (const [name, value] of f.entries()) {
        if (name.indexOf("result:") === 0) results[name.slice(7)] = JSON.parse(String(value));
      }
      return { results: results };
    }
    if (action === "resolve") {
      const out = { call_id: get("call_id") };
      if (get("rerun")) out.rerun = true;
      else if (f.has("result")) out.result = JSON.parse(get("result"));
      else out.error = get("error") || "";
      return out;
    }
    if (action === "cancel") return { reason: get("reason") || "cancelled by operator" };
    if (action === "fork") return { at: parseInt(get("at"), 10), id: get("id") || null };
    return {};
  }

  function bind(root) {
    if (!article) return;
    const id = article.dataset.id;
    root.querySelectorAll("form.action").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        const action = form.dataset.action;
        let body;
        try {
          body = bodyOf(action, form);
        } catch (e) {
          flash("failed", "Not valid JSON: " + e.message);
          return;
        }
        form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        api("/api/executions/" + encodeURIComponent(id) + "/" + action, body).then(function (r) {
          const p = r.payload || {};
          if (r.status >= 200 && r.status < 300) {
            if (action === "fork") {
              window.location.assign("/executions/" + encodeURIComponent(p.execution_id));
              return;
            }
            flash("ok", "Done: " + (p.action || action) + ". Status: " + p.status + "." + (p.note ? " " + p.note : ""));
          } else if (r.status === 409) {
            const err = p.error || {};
            flash("lost", "Someone else acted first (" + (err.type || "conflict") + "): " + (err.message || "") +
              " The page shows what happened.");
          } else {
            const err = p.error || {};
            flash("failed", "Refused (" + r.status + " " + (err.type || "") + "): " + (err.message || ""));
          }
          refresh();
        }, function (e) {
          flash("failed", "The server did not answer: " + e);
          form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
        });
      });
    });
  }

  let refreshing = false;
  let again = false;
  function refresh() {
    if (!article) return;
    if (refreshing) { again = true; return; }
    const live = document.getElementById("live");
    const active = document.activeElement;
    if (live && active && active !== document.body && live.querySelector("#actions").contains(active) &&
        (active.tagName === "TEXTAREA" || active.tagName === "INPUT") && active.value) {
      setTimeout(refresh, 1000); // someone is typing an answer: update later
      return;
    }
    refreshing = true;
    fetch("/executions/" + encodeURIComponent(article.dataset.id) + "/live", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        const doc = new DOMParser().parseFromString(html, "text/html");
        const fresh = doc.getElementById("live");
        const current = document.getElementById("live");
        if (fresh && current) {
          const adopted = document.importNode(fresh, true);
          current.replaceWith(adopted);
          bind(adopted);
        }
      })
      .finally(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      });
  }

  function follow() {
    if (!article || typeof EventSource === "undefined") return;
    const live = document.getElementById("live");
    const seen = live ? live.dataset.records || "0" : "0";
    const source = new EventSource(
      "/api/executions/" + encodeURIComponent(article.dataset.id) + "/stream?after=" + encodeURIComponent(seen));
    let timer = null;
    const soon = function () {
      if (timer !== null) return;
      timer = setTimeout(function () { timer = null; refresh(); }, 150);
    };
    source.addEventListener("record", soon);
    source.addEventListener("end", function () { source.close(); soon(); });
    source.addEventListener("fault", function () { source.close(); soon(); });
  }

  bind(document);
  follow();
})();
