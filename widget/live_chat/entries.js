  // Entries from list_conversation_entries → transcript items and the state around them
  // (who is on, typing, queue, ended). Deduplicated by entry id; our own messages come back
  // as echoes and confirm the optimistic bubbles instead of being shown twice.

  function addItem(item) {
    state.items.push(item);
    appendItem(item);
  }

  function addNotice(kind, text, id) {
    addItem({ key: id || "local-" + ++state.seq, id: id || null, type: "notice", kind, text });
  }

  function sameId(a, b) {
    return Boolean(a && b) && String(a).toLowerCase() === String(b).toLowerCase();
  }

  const textOrNull = (value) => (value == null ? null : String(value));

  // Choices arrive as {id, title}; a view saved by an older version kept titles only.
  function choicesOf(entry) {
    if (!Array.isArray(entry.choices)) return null;
    const list = entry.choices
      .map((c) => (typeof c === "string" ? { id: null, title: c } : c))
      .filter((c) => c && typeof c === "object" && c.title)
      .map((c) => ({ id: textOrNull(c.id), title: String(c.title) }));
    return list.length ? list : null;
  }

  function linkOf(entry) {
    const link = entry.link;
    if (!link || typeof link !== "object") return null;
    return { url: typeof link.url === "string" ? link.url : null, title: textOrNull(link.title) };
  }

  function filesOf(entry) {
    if (!Array.isArray(entry.files)) return null;
    const files = entry.files.filter((f) => f && typeof f === "object").map((f) => ({
      name: f.name == null ? "Attachment" : String(f.name),
      mimeType: f.mimeType == null ? "" : String(f.mimeType),
      url: typeof f.url === "string" ? f.url : null,
    }));
    return files.length ? files : null;
  }

  // Tokens of an answer streamed ahead of it: one growing bubble, replaced by the answer.
  function applyStreaming(entry) {
    state.progress = null;
    const target = typeof entry.targetId === "string" && entry.targetId ? entry.targetId : null;
    if (!target || state.items.some((i) => sameId(i.id, target))) return;
    let item = state.items.find((i) => i.streamTarget === target);
    if (!item) {
      item = {
        key: "stream-" + target,
        id: null,
        type: "message",
        role: entry.role || "Chatbot",
        name: entry.name || state.botName || "Assistant",
        text: "",
        ts: entry.timestamp || null,
        status: "sent",
        streamTarget: target,
        parts: {},
      };
      addItem(item);
    }
    const seq = Number.isFinite(entry.sequence)
      ? entry.sequence
      : Object.keys(item.parts).length + 1;
    item.parts[seq] = entry.text == null ? "" : String(entry.text);
    item.text = Object.keys(item.parts)
      .map(Number)
      .sort((a, b) => a - b)
      .map((n) => item.parts[n])
      .join("");
    updateItem(item);
  }

  function applyMessage(entry, id) {
    const role = entry.role || "System";
    const text = entry.text == null ? "" : String(entry.text);
    if (role === "Chatbot" || role === "Agent") state.progress = null;
    const preview = id && state.items.find((i) => sameId(i.streamTarget, id));
    if (preview) {
      // The final answer replaces what was streamed.
      preview.id = id;
      preview.text = text;
      preview.streamTarget = null;
      preview.parts = null;
      preview.ts = entry.timestamp || preview.ts;
      preview.choices = choicesOf(entry);
      preview.link = linkOf(entry);
      preview.files = filesOf(entry);
      updateItem(preview);
      return;
    }
    if (role === "EndUser") {
      // Our own optimistic bubble: matched by the message id send_message returned, or (when the
      // echo overtakes that answer, or carries another id) by text, oldest first.
      const mine = state.items.filter((i) => i.local && i.role === "EndUser" && !i.echoed);
      const match =
        mine.find((i) => sameId(i.messageId, id)) ||
        mine.find((i) => i.text === text && i.status !== "failed") ||
        mine.find((i) => i.text === text);
      if (match) {
        match.echoed = true;
        match.id = id;
        match.status = "sent";
        match.ts = entry.timestamp || match.ts;
        match.files = filesOf(entry) || match.files;
        match.upload = null;
        updateItem(match);
        return;
      }
    }
    if (role !== "EndUser" && role !== "Chatbot" && role !== "Agent") {
      if (text) addNotice("system", text, id);
      return;
    }
    const fallback = role === "EndUser" ? "You" : role === "Chatbot" ? "Assistant" : "Agent";
    const name = role === "EndUser" ? "You" : entry.name || fallback;
    if (role === "Chatbot" && entry.name) state.botName = entry.name;
    addItem({
      key: id || "remote-" + ++state.seq,
      id,
      type: "message",
      role,
      name,
      text,
      ts: entry.timestamp || null,
      status: "sent",
      echoed: role === "EndUser",
      choices: choicesOf(entry),
      link: linkOf(entry),
      files: filesOf(entry),
    });
    if (state.items[state.items.length - 1].choices) {
      // A newer offer: the older ones can no longer be answered.
      for (const older of state.items.slice(0, -1)) if (older.choices) updateItem(older);
    }
  }

  // A progress line lasts until the bot's answer, or until the chat moves on without one.
  const ENDS_PROGRESS = new Set([
    "transfer",
    "routing_failed",
    "session_ended",
    "conversation_closed",
    "left",
  ]);

  function applyEntry(entry) {
    if (!entry || typeof entry !== "object") return;
    if (ENDS_PROGRESS.has(entry.kind)) state.progress = null;
    const id = typeof entry.id === "string" && entry.id ? entry.id : null;
    if (id && state.items.some((i) => i.id === id)) return;
    const who = entry.name || null;
    switch (entry.kind) {
      case "message":
        applyMessage(entry, id);
        break;
      case "joined":
        if (entry.role === "Agent") {
          state.agentName = who || state.agentName;
          addNotice("joined", (who || "An agent") + " joined the chat", id);
        } else if (entry.role === "Chatbot") {
          state.botName = who || state.botName;
          addNotice("joined", (who || "The assistant") + " joined the chat", id);
        }
        break;
      case "left":
        if (entry.role === "Agent" || entry.role === "Chatbot") {
          addNotice("left", (who || (entry.role === "Agent" ? "The agent" : "The assistant")) +
            " left the chat", id);
        }
        break;
      case "transfer":
        addNotice("transfer", "Transferring you to an agent…", id);
        break;
      case "routing_failed":
        addNotice("routing_failed", "Couldn't reach an agent" +
          (entry.text ? ": " + entry.text : "."), id);
        break;
      case "queue_position":
        state.queuePosition = entry.position == null ? null : entry.position;
        break;
      case "session_ended":
        if (entry.endedBy === "Agent") addNotice("session_ended", "The agent ended the chat", id);
        else if (entry.endedBy === "EndUser") {
          if (!state.items.some((i) => i.kind === "closed_by_user")) {
            addNotice("session_ended", "You ended the chat", id);
          }
        } else addNotice("session_ended", "The chat has ended", id);
        break;
      case "conversation_closed":
        if (!state.items.some((i) => i.kind === "closed_by_user")) {
          addNotice("conversation_closed", "The conversation was closed", id);
        }
        break;
      case "form":
        addNotice(
          "form",
          (who || "The agent") + " sent a form" + (entry.text ? ": " + entry.text : "") +
            ". It can't be filled in here.",
          id,
        );
        break;
      case "unsupported":
        addNotice("unsupported", "Something was sent that this chat can't show" +
          (entry.text ? " (" + entry.text + ")" : "") + ".", id);
        break;
      case "streaming":
        applyStreaming(entry);
        break;
      case "progress":
        state.progress = entry.text ? String(entry.text) : null;
        break;
      case "typing_started":
        if (entry.role === "Agent") state.typing = true;
        break;
      case "typing_stopped":
        if (entry.role === "Agent") state.typing = false;
        break;
      default:
        // routed, session_started and anything newer: nothing to show.
        break;
    }
  }

  function applyPage(page) {
    const entries = Array.isArray(page.entries) ? page.entries : [];
    for (const entry of entries) applyEntry(entry);
    if (page.cursor != null) state.cursor = String(page.cursor);
    const info = page.roleInfo || {};
    if (info.agentName) state.agentName = info.agentName;
    state.live = Boolean(info.isLiveAgent);
    state.transferring = Boolean(info.transferring);
    state.queuePosition = info.queuePosition == null ? null : info.queuePosition;
    state.typing = Boolean(info.agentTyping);
    state.ended = Boolean(info.conversationEnded);
    state.endedByAgent = Boolean(info.endedByAgent);
    if (info.conversationClosed) state.closed = true;
    renderChrome();
    save();
  }
