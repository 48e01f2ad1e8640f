// The admin page: a live feed of new comments (the admin channel) and moderation (hide, show, delete).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem("hafi-admin-token");

  const setStatus = (state, text) => Object.assign($("status"), { textContent: text || state }).setAttribute("data-state", state);

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function renderRow(comment) {
    const existing = $("rows").querySelector(`[data-id="${comment.id}"]`);
    const row = document.createElement("tr");
    row.dataset.id = comment.id;
    row.classList.toggle("hidden-row", comment.status === "hidden");
    const actions = document.createElement("td");
    const toggle = document.createElement("button");
    toggle.textContent = comment.status === "hidden" ? "Show" : "Hide";
    toggle.addEventListener("click", () => moderate("PATCH", comment, { status: comment.status === "hidden" ? "visible" : "hidden" }));
    const remove = document.createElement("button");
    remove.textContent = "Delete";
    remove.addEventListener("click", () => moderate("DELETE", comment));
    actions.append(toggle, remove);
    row.append(cell(comment.eventSlug), cell(comment.authorName), cell(comment.content, "content"), actions);
    if (existing) existing.replaceWith(row);
    else $("rows").prepend(row);
  }

  async function moderate(method, comment, body) {
    try {
      const updated = await HafiRealtime.api("", token, method, `/api/admin/comments/${comment.id}`, body);
      if (updated) renderRow(updated);
      else $("rows").querySelector(`[data-id="${comment.id}"]`)?.remove();
    } catch (error) {
      $("queue-error").textContent = error.message;
    }
  }

  function onEvent(name, data) {
    if (name !== "notification:new-comment") return;
    const item = document.createElement("li");
    const where = document.createElement("b");
    where.textContent = `${data.eventSlug} · ${data.comment.authorName}: `;
    item.append(where, document.createTextNode(data.comment.content));
    $("feed").prepend(item);
    renderRow({ ...data.comment, eventSlug: data.eventSlug, status: "visible" });
  }

  async function open() {
    const queue = await HafiRealtime.api("", token, "GET", "/api/admin/comments?limit=100");
    $("login").hidden = true;
    $("notifications").hidden = false;
    $("queue").hidden = false;
    queue.comments.reverse().forEach(renderRow);
    await HafiRealtime.connect({
      token,
      admin: true,
      // No seq for the admin channel: the queue above already shows earlier comments; the feed starts now.
      onEvent,
      onStatus: (state) => setStatus(state),
    });
  }

  $("login").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    try {
      const response = await fetch("/api/auth/admin/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: $("email").value, password: $("password").value }),
      });
      const data = await response.json();
      if (!response.ok) throw new Error(data.error.message);
      token = data.token;
      sessionStorage.setItem("hafi-admin-token", token);
      await open();
    } catch (error) {
      $("login-error").textContent = error.message;
    }
  });

  if (token) open().catch(() => sessionStorage.removeItem("hafi-admin-token"));
})();
