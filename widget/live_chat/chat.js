  // The chat: state kept across re-renders, the long-poll loop, sending with retry, ending the
  // chat, and start-up.

  const STATE_VERSION = 1;
  const MAX_ITEMS = 300;
  const MAX_POLL_FAILURES = 4;
  // Read errors that end the chat for good, with what the widget says.
  const FINAL_ERRORS = [
    // Closed elsewhere (End chat in an earlier render, or by the model).
    [/This chat was closed/, "This chat was closed"],
    // The server kept chats in memory and restarted: this one is gone.
    [/server restarted/, "The server restarted and this chat could not be kept. Ask the assistant to start a new chat."],
  ];

  // ---------------------------------------------------------------------------------------------
  // State: everything needed to redraw the view after a re-render

  function freshState() {
    return {
      v: STATE_VERSION,
      ids: null,
      cursor: "0",
      seq: 0,
      items: [],
      agentName: null,
      botName: null,
      live: false,
      transferring: false,
      queuePosition: null,
      typing: false,
      ended: false,
      endedByAgent: false,
      closed: false,
      closedByUser: false,
      progress: null,
    };
  }

  let state = freshState();
  const run = {
    host: null,
    gen: 0,
    polling: false,
    ending: false,
    connection: "ok",
    error: "",
    typingSent: false,
    typingTimer: null,
    typingReports: Promise.resolve(),
    acking: false,
  };
  const TYPING_IDLE_MS = 4000;
  // Salesforce's limit for a file from the user (send_file refuses larger ones too).
  const MAX_FILE_BYTES = 5 * 1024 * 1024;
  let saveQueued = false;

  function save() {
    if (saveQueued || !run.host) return;
    saveQueued = true;
    queueMicrotask(() => {
      saveQueued = false;
      if (state.items.length > MAX_ITEMS) state.items = state.items.slice(-MAX_ITEMS);
      try {
        // A file's bytes stay in this view's memory only: widget state is kept small.
        const items = state.items.map((i) => (i.upload ? { ...i, upload: null } : i));
        run.host.saveState({ ...state, items });
      } catch (_) {
        // Losing the saved copy only costs a re-read from the server.
      }
    });
  }

  function restore(saved) {
    if (!saved || saved.v !== STATE_VERSION || !Array.isArray(saved.items)) return false;
    if (!saved.ids || typeof saved.ids.conversationId !== "string") return false;
    state = { ...freshState(), ...saved, items: saved.items.filter((i) => i && i.key) };
    for (const item of state.items) {
      // A send cut short by the re-render may or may not have arrived: the server's echo settles
      // it; until then the user can retry.
      if (item.status === "pending") item.status = "failed";
      // A file cut short cannot be sent again from here (its bytes were not kept).
      if (item.files && item.local && !item.echoed && item.status === "failed") item.lost = true;
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Tool calls

  function toolText(result) {
    const content = result && Array.isArray(result.content) ? result.content : [];
    return content.map((c) => (c && c.type === "text" ? c.text : "")).join(" ").trim();
  }

  // The structured result of a tool call, whichever shape the host hands back.
  function structured(result) {
    if (!result || typeof result !== "object") throw new Error("The host returned no result");
    if (result.isError) throw new Error(toolText(result) || "The tool call failed");
    if (result.structuredContent && typeof result.structuredContent === "object") {
      return result.structuredContent;
    }
    if (typeof result.result === "string") {
      try {
        const parsed = JSON.parse(result.result);
        return parsed.structuredContent || parsed;
      } catch (_) {
        // not JSON: fall through
      }
    }
    return result;
  }

  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function stopPolling() {
    run.gen += 1;
    run.polling = false;
  }

  async function poll() {
    if (run.polling || !state.ids || state.closed || state.ended) return;
    run.polling = true;
    const gen = run.gen;
    const ids = state.ids;
    let failures = 0;
    try {
      while (gen === run.gen && !state.closed && !state.ended) {
        let page;
        try {
          page = structured(
            await run.host.callTool("list_conversation_entries", {
              ...idArgs(ids),
              cursor: state.cursor,
              waitSeconds: CONFIG.waitSeconds,
              includeTyping: true,
            }),
          );
        } catch (err) {
          if (gen !== run.gen) return;
          const final = FINAL_ERRORS.find(([pattern]) => pattern.test(String(err && err.message)));
          if (final) {
            // Not an outage: retrying cannot help, so no Reconnect.
            state.closed = true;
            state.ended = true;
            addNotice("session_ended", final[1]);
            renderChrome();
            save();
            return;
          }
          failures += 1;
          run.connection = failures >= MAX_POLL_FAILURES ? "lost" : "retrying";
          renderChrome();
          if (run.connection === "lost") return;
          await pause(Math.min(500 * 2 ** failures, 8000));
          continue;
        }
        if (gen !== run.gen) return;
        failures = 0;
        run.connection = "ok";
        ui.log.setAttribute("aria-busy", "false");
        applyPage(page);
        acknowledge();
      }
    } finally {
      if (gen === run.gen) run.polling = false;
    }
  }

  // The idempotency key of one message: every attempt to send it (the first, Retry, Retry after
  // a re-render) carries the same one, so the server never delivers it twice. Letters, digits
  // and "-" only, as send_message requires.
  function newClientMessageId() {
    const c = window.crypto;
    if (c && typeof c.randomUUID === "function") return c.randomUUID();
    if (c && typeof c.getRandomValues === "function") {
      const bytes = c.getRandomValues(new Uint8Array(16));
      return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    }
    return "m-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  async function deliver(item) {
    if (!canSend()) return;
    // A message saved by an older view has no key yet: it gets one now, kept from here on.
    if (!item.clientMessageId) item.clientMessageId = newClientMessageId();
    item.status = "pending";
    item.error = null;
    updateItem(item);
    save();
    const args = { ...idArgs(state.ids), clientMessageId: item.clientMessageId };
    let call = ["send_message", { ...args, text: item.text }];
    if (item.choice) call = ["send_choice", { ...args, ...item.choice }];
    if (item.upload) call = ["send_file", { ...args, ...item.upload }];
    try {
      const sent = structured(await run.host.callTool(call[0], call[1]));
      if (sent.messageId && !item.echoed) item.messageId = String(sent.messageId);
      item.status = "sent";
    } catch (err) {
      if (!item.echoed) {
        item.status = "failed";
        item.error = String((err && err.message) || err);
      }
    }
    updateItem(item);
    save();
  }

  function localMessage(text) {
    return {
      key: "local-" + ++state.seq,
      id: null,
      type: "message",
      role: "EndUser",
      name: "You",
      text,
      ts: Date.now(),
      status: "pending",
      local: true,
      echoed: false,
      messageId: null,
      clientMessageId: newClientMessageId(),
    };
  }

  function submit() {
    const text = ui.input.value.trim();
    if (!text || !canSend()) return;
    ui.input.value = "";
    autosize();
    stopTyping();
    const item = localMessage(text);
    addItem(item);
    renderChrome();
    deliver(item);
  }

  // The user attaches a file: read here, sent as base64 through send_file.
  function attach(file) {
    if (!file || !canSend()) return;
    if (file.size === 0) {
      run.error = "That file is empty.";
      renderChrome();
      return;
    }
    if (file.size > MAX_FILE_BYTES) {
      run.error = "Files over 5 MB can't be sent.";
      renderChrome();
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      const data = String(reader.result || "");
      const item = localMessage("");
      item.files = [{ name: file.name, mimeType: file.type || "", url: null }];
      item.upload = {
        fileName: file.name,
        mimeType: file.type || "application/octet-stream",
        content: data.slice(data.indexOf(",") + 1),
      };
      run.error = "";
      addItem(item);
      renderChrome();
      deliver(item);
    };
    reader.onerror = () => {
      run.error = "Couldn't read that file.";
      renderChrome();
    };
    reader.readAsDataURL(file);
  }

  // The user picks one of the offered choices: sent as their answer to that message.
  function pick(offer, choice) {
    const latest = [...state.items].reverse().find((i) => i.choices && i.choices.length);
    if (!canSend() || offer !== latest || offer.picked || !choice.id || !offer.id) return;
    offer.picked = choice.id;
    updateItem(offer);
    const item = localMessage(choice.title);
    item.choice = { messageId: offer.id, choiceId: choice.id };
    addItem(item);
    renderChrome();
    deliver(item);
  }

  // ---------------------------------------------------------------------------------------------
  // What the agent sees of the user: typing (debounced) and read receipts

  function report(args) {
    if (!state.ids || state.ended || state.closed) return Promise.resolve();
    return Promise.resolve()
      .then(() => run.host.callTool("report_chat_activity", { ...idArgs(state.ids), ...args }))
      .then(structured);
  }

  // Typing reports go one after another, so "stopped" never overtakes "started".
  function reportTyping(typing) {
    run.typingReports = run.typingReports
      .then(() => report({ typing }))
      .catch(() => {
        if (typing) run.typingSent = false;
      });
  }

  function stopTyping() {
    clearTimeout(run.typingTimer);
    run.typingTimer = null;
    if (!run.typingSent) return;
    run.typingSent = false;
    reportTyping(false);
  }

  function onTyping() {
    if (!canSend() || !ui.input.value.trim()) {
      stopTyping();
      return;
    }
    if (!run.typingSent) {
      run.typingSent = true;
      reportTyping(true);
    }
    clearTimeout(run.typingTimer);
    run.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  // The agent's messages the user has had in front of them (the view is visible) are
  // acknowledged as read, each once.
  async function acknowledge() {
    if (run.acking || document.visibilityState === "hidden" || !state.ids) return;
    const unread = state.items
      .filter((i) => i.type === "message" && i.role === "Agent" && i.id && !i.read)
      .slice(-50);
    if (!unread.length) return;
    run.acking = true;
    try {
      await report({ readEntryIds: unread.map((i) => i.id) });
      for (const item of unread) item.read = true;
      save();
    } catch (_) {
      // Not acknowledged: tried again with the next page or when the view is shown again.
    } finally {
      run.acking = false;
    }
  }

  async function endChat() {
    if (!state.ids || state.closed || run.ending) return;
    run.ending = true;
    run.error = "";
    renderChrome();
    try {
      structured(
        await run.host.callTool("close_conversation", {
          ...idArgs(state.ids),
        }),
      );
    } catch (err) {
      run.ending = false;
      run.error = "Couldn't end the chat. Please try again.";
      renderChrome();
      return;
    }
    stopPolling();
    run.ending = false;
    state.closed = true;
    state.closedByUser = true;
    state.ended = true;
    state.typing = false;
    state.queuePosition = null;
    if (!state.items.some((i) => i.kind === "session_ended" && i.text === "You ended the chat")) {
      addNotice("closed_by_user", "You ended the chat");
    }
    renderChrome();
    save();
    try {
      // Tell the model, without any of the conversation's content.
      await run.host.followUp(CONFIG.followUpText);
    } catch (_) {
      // The chat is closed either way; the model learns it on its next read.
    }
  }

  function openLink(url) {
    Promise.resolve()
      .then(() => run.host.openLink(url))
      .catch(() => {
        run.error = "Couldn't open the link.";
        renderChrome();
      });
  }

  // The ids every call names; the widget key lets the calls in when the host sends them
  // without the ChatGPT user the chat is bound to.
  function idArgs(ids) {
    const args = { sessionId: ids.sessionId, conversationId: ids.conversationId };
    if (ids.widgetKey) args.widgetKey = ids.widgetKey;
    return args;
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring

  function onToolResult(result) {
    if (!result || typeof result !== "object") return;
    const meta = result._meta || result.meta || {};
    const output = result.structuredContent || {};
    const sessionId = meta.sessionId;
    const conversationId = meta.conversationId || output.conversationId;
    const widgetKey = typeof meta.widgetKey === "string" ? meta.widgetKey : undefined;
    if (typeof sessionId !== "string" || typeof conversationId !== "string") return;
    const current = state.ids;
    if (current && current.sessionId === sessionId && current.conversationId === conversationId) {
      if (widgetKey) current.widgetKey = widgetKey;
      poll();
      return;
    }
    if (current) {
      // Another chat than the one saved: start over.
      stopPolling();
      state = freshState();
      renderAll();
    }
    state.ids = { sessionId, conversationId, widgetKey };
    if (output.agentName) state.agentName = String(output.agentName);
    ui.log.setAttribute("aria-busy", "true");
    renderChrome();
    save();
    poll();
  }

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight + 2, 120) + "px";
  }

  // ---------------------------------------------------------------------------------------------
  // Start-up

  function wire() {
    // Hosts sandbox the view without `allow-forms`, so the form is never submitted: the button
    // and Enter send.
    ui.composer.addEventListener("submit", (event) => event.preventDefault());
    ui.send.addEventListener("click", submit);
    ui.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      }
    });
    ui.input.addEventListener("input", () => {
      autosize();
      ui.send.disabled = !canSend() || !ui.input.value.trim();
      onTyping();
    });
    document.addEventListener("visibilitychange", acknowledge);
    ui.end.addEventListener("click", endChat);
    ui.attach.addEventListener("click", () => ui.file.click());
    ui.file.addEventListener("change", () => {
      attach(ui.file.files && ui.file.files[0]);
      ui.file.value = "";
    });
    ui.reconnect.addEventListener("click", () => {
      run.connection = "ok";
      renderChrome();
      poll();
    });
  }

  function start() {
    wire();
    run.host = pickHost();
    applyTheme(null);
    renderChrome();
    if (!run.host) {
      run.error = "Open this view from a chat host.";
      renderChrome();
      return;
    }
    ui.app.dataset.host = run.host.kind;
    // A re-render: redraw what this view showed before, then read on from its cursor.
    if (restore(run.host.loadState())) {
      renderAll();
      renderChrome();
      poll();
    }
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(() => run.host.resized(document.documentElement.scrollHeight)).observe(
        document.documentElement,
      );
    }
    Promise.resolve()
      .then(() => run.host.start({ toolResult: onToolResult, theme: applyTheme }))
      .catch((err) => {
        run.error = String((err && err.message) || err);
        renderChrome();
      });
  }

  start();
