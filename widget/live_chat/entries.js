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

  function applyMessage(entry, id) {
    const role = entry.role || "System";
    const text = entry.text == null ? "" : String(entry.text);
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
      choices: Array.isArray(entry.choices) ? entry.choices.map(String) : null,
    });
  }

  function applyEntry(entry) {
    if (!entry || typeof entry !== "object") return;
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
