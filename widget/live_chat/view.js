  // Drawing the view from `state`. Every string from the server goes in with textContent,
  // never as HTML.

  const $ = (id) => document.getElementById(id);
  const ui = {
    app: $("app"),
    initials: $("avatar-initials"),
    name: $("agent-name"),
    status: $("status"),
    end: $("end-chat"),
    transcript: $("transcript"),
    log: $("log"),
    list: $("messages"),
    queue: $("queue"),
    typing: $("typing"),
    typingText: $("typing-text"),
    banner: $("banner"),
    bannerText: $("banner-text"),
    reconnect: $("reconnect"),
    composer: $("composer"),
    input: $("input"),
    send: $("send"),
    attach: $("attach"),
    file: $("file"),
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function initials(name) {
    const words = String(name || "")
      .split(/\s+/)
      .map((w) => w.replace(/[^\p{L}\p{N}]/gu, ""))
      .filter(Boolean);
    if (!words.length) return "?";
    const first = words[0][0];
    const last = words.length > 1 ? words[words.length - 1][0] : "";
    return (first + last).toUpperCase();
  }

  function clock(ts) {
    if (!ts) return "";
    try {
      return new Date(ts).toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
    } catch (_) {
      return "";
    }
  }

  function roleClass(role) {
    if (role === "EndUser") return "msg--user";
    if (role === "Chatbot") return "msg--bot";
    return "msg--agent";
  }

  function userMeta(item) {
    if (item.status === "pending") return "Sending…";
    if (item.status === "failed") {
      // Salesforce may still have it: Retry (same clientMessageId) settles it without a copy.
      return /not confirmed/i.test(item.error || "") ? "Not confirmed" : "Not sent";
    }
    return [clock(item.ts), "Sent"].filter(Boolean).join(" · ");
  }

  // A message right after another from the same sender joins its group: no second name line.
  function continues(item, previous) {
    return Boolean(
      previous &&
        previous.type === "message" &&
        item.type === "message" &&
        previous.role === item.role &&
        previous.name === item.name,
    );
  }

  function previousOf(item) {
    const index = state.items.indexOf(item);
    return index > 0 ? state.items[index - 1] : null;
  }

  function renderItem(item, previous) {
    const li = el("li");
    li.dataset.key = item.key;
    if (item.type === "notice") {
      li.className = "notice" + (item.kind === "session_ended" ? " notice--ended" : "");
      li.dataset.kind = item.kind;
      li.textContent = item.text;
      return li;
    }
    li.className = "msg " + roleClass(item.role);
    li.dataset.role = item.role;
    if (item.role === "EndUser") {
      li.dataset.status = item.status || "sent";
      li.dataset.echoed = item.echoed ? "true" : "false";
    }
    if (item.role === "EndUser") {
      li.appendChild(el("span", "sr-only", "You said:"));
    } else if (continues(item, previous)) {
      li.classList.add("msg--cont");
      li.appendChild(el("span", "sr-only", item.name + " said:"));
    } else {
      const sender = el("p", "msg__sender");
      sender.appendChild(el("span", "msg__name", item.name));
      if (item.role === "Chatbot") sender.appendChild(el("span", "tag", "Bot"));
      const time = clock(item.ts);
      if (time) sender.appendChild(el("span", "msg__time", time));
      li.appendChild(sender);
    }
    if (item.text || !(item.link || item.files)) li.appendChild(el("p", "msg__bubble", item.text));
    if (item.streamTarget) {
      li.classList.add("msg--streaming");
      li.setAttribute("aria-busy", "true");
    }
    if (item.link) li.appendChild(linkCard(item.link));
    for (const file of item.files || []) li.appendChild(fileCard(file));
    if (Array.isArray(item.choices) && item.choices.length) li.appendChild(choiceList(item));
    if (item.role !== "EndUser") return li;
    const meta = el("p", "msg__meta", userMeta(item));
    if (item.status === "failed" && item.lost) {
      meta.append(" · attach it again");
    } else if (item.status === "failed") {
      meta.append(" · ");
      const retry = el("button", "link retry", "Retry");
      retry.type = "button";
      retry.disabled = !canSend();
      const what = item.text || (item.files && item.files[0] && item.files[0].name) || "";
      retry.setAttribute("aria-label", "Retry sending: " + what);
      retry.addEventListener("click", () => deliver(item));
      meta.appendChild(retry);
    }
    li.appendChild(meta);
    return li;
  }

  // Only http(s) addresses become links; anything else (javascript:, data:) stays text.
  function webUrl(url) {
    if (typeof url !== "string") return null;
    try {
      const parsed = new URL(url);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  // Opened by the host (a new tab), never inside the view.
  function opener(url, label, className) {
    const href = webUrl(url);
    if (!href) return el("span", className + " " + className + "--plain", label);
    const a = el("a", className, label);
    a.href = href;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    a.addEventListener("click", (event) => {
      event.preventDefault();
      openLink(href);
    });
    return a;
  }

  function linkCard(link) {
    const card = el("div", "card card--link");
    const href = webUrl(link.url);
    card.appendChild(opener(link.url, link.title || href || "Link", "card__title"));
    if (href) card.appendChild(el("span", "card__meta", new URL(href).host));
    return card;
  }

  function fileKind(mimeType) {
    if (/^image\//.test(mimeType)) return "Image";
    if (mimeType === "application/pdf") return "PDF";
    if (/^text\/plain/.test(mimeType)) return "Text";
    return mimeType ? mimeType.split("/").pop().toUpperCase() : "File";
  }

  function fileCard(file) {
    const card = el("div", "card card--file");
    card.dataset.kind = /^image\//.test(file.mimeType) ? "image" : "file";
    card.appendChild(el("span", "card__title", file.name));
    card.appendChild(el("span", "card__meta", fileKind(file.mimeType)));
    if (webUrl(file.url)) card.appendChild(opener(file.url, "Open", "card__open"));
    return card;
  }

  // The newest offer can be answered once, while the chat is open.
  function choiceList(item) {
    const list = el("div", "choices");
    list.setAttribute("role", "group");
    list.setAttribute("aria-label", "Choices");
    const latest = [...state.items].reverse().find((i) => i.choices && i.choices.length) === item;
    for (const choice of item.choices) {
      const button = el("button", "choice", choice.title);
      button.type = "button";
      button.dataset.choiceId = choice.id || "";
      if (item.picked && item.picked === choice.id) button.setAttribute("aria-pressed", "true");
      button.disabled = !latest || Boolean(item.picked) || !choice.id || !item.id || !canSend();
      button.addEventListener("click", () => pick(item, choice));
      list.appendChild(button);
    }
    return list;
  }

  function nearBottom() {
    const t = ui.transcript;
    return t.scrollHeight - t.scrollTop - t.clientHeight < 80;
  }

  function scrollToEnd() {
    ui.transcript.scrollTop = ui.transcript.scrollHeight;
  }

  function appendItem(item) {
    const stick = nearBottom();
    ui.list.appendChild(renderItem(item, previousOf(item)));
    if (stick || item.role === "EndUser") scrollToEnd();
  }

  function updateItem(item) {
    const node = ui.list.querySelector('[data-key="' + CSS.escape(item.key) + '"]');
    if (node) node.replaceWith(renderItem(item, previousOf(item)));
    else appendItem(item);
  }

  function renderAll() {
    ui.list.replaceChildren(...state.items.map((item, i) => renderItem(item, state.items[i - 1])));
    scrollToEnd();
  }

  function canSend() {
    return Boolean(state.ids) && !state.ended && !state.closed;
  }

  function headerStatus() {
    if (!state.ids) return ["connecting", "Connecting…"];
    if (state.ended || state.closed) return ["ended", "Chat ended"];
    if (run.connection === "lost") return ["offline", "Connection lost"];
    if (run.connection === "retrying") return ["offline", "Reconnecting…"];
    if (state.live) return ["online", state.typing ? "Typing…" : "Online"];
    if (state.transferring || state.queuePosition != null) {
      return ["waiting", "Waiting for an agent"];
    }
    if (state.botName) return ["bot", "Virtual assistant"];
    return ["connecting", "Connecting…"];
  }

  function renderChrome() {
    // Banners and the typing line change the transcript's height: stay at the end if it was.
    const stick = nearBottom();
    const waiting = !state.live && (state.transferring || state.queuePosition != null);
    const name = state.agentName || (waiting ? null : state.botName) || "Live chat";
    ui.name.textContent = name;
    ui.initials.textContent = initials(name);
    const [kind, text] = headerStatus();
    ui.app.dataset.status = kind;
    if (ui.status.textContent !== text) ui.status.textContent = text;

    const queued = !state.live && !state.ended && !state.closed && state.queuePosition != null;
    ui.queue.hidden = !queued;
    if (queued) {
      const line = "You're number " + state.queuePosition + " in line for an agent.";
      if (ui.queue.textContent !== line) ui.queue.textContent = line;
    }

    const typing = state.typing && !state.ended && !state.closed;
    const working = !typing && state.progress && !state.ended && !state.closed;
    ui.typing.hidden = !typing && !working;
    ui.typingText.textContent = working
      ? state.progress
      : (state.agentName || "The agent") + " is typing…";

    // The end of the chat is a notice in the transcript; the banner is for trouble.
    let banner = run.error;
    if (!banner && run.connection === "lost" && !state.ended && !state.closed) {
      banner = "Can't reach the chat right now.";
    }
    ui.banner.hidden = !banner;
    if (ui.bannerText.textContent !== banner) ui.bannerText.textContent = banner;
    ui.reconnect.hidden = !(run.connection === "lost" && !state.ended && !state.closed);

    const open = canSend();
    ui.input.disabled = !open;
    ui.input.placeholder = open
      ? "Type a message…"
      : state.ended || state.closed
        ? "The chat has ended"
        : "Connecting…";
    ui.send.disabled = !open || !ui.input.value.trim();
    ui.attach.disabled = !open;
    ui.end.disabled = !state.ids || state.closed || run.ending;
    ui.end.textContent = run.ending ? "Ending…" : "End chat";
    for (const retry of ui.list.querySelectorAll(".retry")) retry.disabled = !open;
    if (!open) for (const choice of ui.list.querySelectorAll(".choice")) choice.disabled = true;
    if (stick) scrollToEnd();
  }

  function applyTheme(theme) {
    let chosen = theme;
    if (chosen !== "light" && chosen !== "dark") {
      const dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
      chosen = dark ? "dark" : "light";
    }
    document.documentElement.dataset.theme = chosen;
  }
