// The guest gallery: likes and comments, live. Comment text is only ever set with textContent (never as HTML).
(function () {
  "use strict";
  const slug = new URLSearchParams(location.search).get("event") || "demo-wedding";
  const tokenKey = `hafi-guest-token`;
  const $ = (id) => document.getElementById(id);
  const cards = new Map();
  let token = localStorage.getItem(tokenKey);
  let live = null;
  let watching = 0; // how many have the gallery open, as the provider counts its subscribers

  const setStatus = (state, text) => Object.assign($("status"), { textContent: text || state }).setAttribute("data-state", state);
  const showLive = (state) => setStatus(state, state === "live" && watching ? `live · ${watching} watching` : state);

  async function guestToken(body) {
    const response = await fetch("/api/auth/guest", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await response.json();
    if (!response.ok) throw Object.assign(new Error(data.error.message), { code: data.error.code });
    token = data.token;
    localStorage.setItem(tokenKey, token);
  }

  function renderComment(list, comment) {
    if (list.querySelector(`[data-id="${comment.id}"]`)) return;
    const item = document.createElement("li");
    item.dataset.id = comment.id;
    const author = document.createElement("b");
    author.textContent = comment.authorName;
    item.append(author, document.createTextNode(comment.content));
    list.append(item);
    list.scrollTop = list.scrollHeight;
  }

  function renderPhoto(photo) {
    const node = $("card").content.firstElementChild.cloneNode(true);
    node.dataset.photoId = photo.id;
    node.querySelector("img").src = photo.url;
    node.querySelector("img").alt = photo.caption || "";
    node.querySelector(".caption").textContent = photo.caption || "";
    const like = node.querySelector(".like");
    const count = node.querySelector(".count");
    const list = node.querySelector(".comments");
    const form = node.querySelector("form");
    count.textContent = photo.likeCount;
    like.setAttribute("aria-pressed", String(photo.likedByMe));
    like.addEventListener("click", async () => {
      const liked = like.getAttribute("aria-pressed") !== "true";
      like.setAttribute("aria-pressed", String(liked));
      try {
        const state = await HafiRealtime.api("", token, liked ? "POST" : "DELETE", `/api/photos/${photo.id}/like`);
        count.textContent = state.likeCount;
      } catch (error) {
        like.setAttribute("aria-pressed", String(!liked));
        $("page-error").textContent = error.message;
      }
    });
    form.authorName.value = localStorage.getItem("hafi-author") || "";
    form.addEventListener("submit", async (submit) => {
      submit.preventDefault();
      const error = form.querySelector(".error");
      error.textContent = "";
      try {
        const comment = await HafiRealtime.api("", token, "POST", `/api/photos/${photo.id}/comments`, {
          authorName: form.authorName.value,
          content: form.content.value,
        });
        localStorage.setItem("hafi-author", form.authorName.value);
        form.content.value = "";
        renderComment(list, comment);
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    cards.set(photo.id, { node, count, list, like });
    HafiRealtime.api("", token, "GET", `/api/photos/${photo.id}/comments?limit=50`).then((page) =>
      page.comments.reverse().forEach((comment) => renderComment(list, comment)),
    );
    return node;
  }

  function onEvent(name, data) {
    const card = cards.get(data.photoId);
    if (!card) return;
    if (name === "photo:liked" || name === "photo:unliked") card.count.textContent = data.likeCount;
    else if (name === "comment:added") renderComment(card.list, data.comment);
    else if (name === "comment:removed") card.list.querySelector(`[data-id="${data.commentId}"]`)?.remove();
  }

  async function open() {
    if (!token) await guestToken();
    let event;
    try {
      event = await HafiRealtime.api("", token, "GET", `/api/events/${slug}`);
    } catch (error) {
      // A protected event answers as an unknown one does until it is unlocked: offer the code for both.
      if (error.code === "event_not_found") {
        $("unlock").hidden = false;
        setStatus("offline", "locked");
        return;
      }
      if (error.status === 401) {
        localStorage.removeItem(tokenKey);
        token = null;
        return open();
      }
      throw error;
    }
    $("unlock").hidden = true;
    document.title = `${event.title} · Hafiportrait Realtime`;
    $("title").textContent = event.title;
    $("grid").replaceChildren(...event.photos.map(renderPhoto));
    live?.close();
    live = await HafiRealtime.connect({
      token,
      eventSlug: slug,
      seq: { [event.channel]: event.seq },
      onEvent,
      onStatus: showLive,
      onPresence: (data) => {
        watching = data.count;
        if ($("status").dataset.state === "live") showLive("live");
      },
      onReset: () => open(),
    });
  }

  $("unlock").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    try {
      await guestToken({ eventSlug: slug, accessCode: $("code").value });
      await open();
    } catch (error) {
      $("unlock-error").textContent = error.message;
    }
  });

  open().catch((error) => {
    console.error(error);
    $("page-error").textContent = error.message;
    setStatus("offline");
  });
})();
