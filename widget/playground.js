// The playground host. It plays the model (tool calls over JSON-RPC to /mcp, same origin) and the
// chat host: it runs the widget in a sandboxed iframe and answers it either through an injected
// `window.openai` (host=openai) or through the MCP Apps `ui/*` bridge (host=mcp-apps), never both,
// so each mode proves the widget works with that transport alone.
(() => {
  "use strict";

  const CONFIG = JSON.parse(document.getElementById("playground-config").textContent);
  const $ = (id) => document.getElementById(id);
  const ui = {
    start: $("start"),
    summary: $("model-summary"),
    customer: $("model-customer"),
    showNow: $("show-now"),
    rerender: $("rerender"),
    conversationId: $("conversation-id"),
    transport: $("transport"),
    modelLog: $("model-log"),
    say: $("model-say"),
    sayText: $("model-text"),
    saySend: $("model-send"),
    followups: $("followups"),
    frameBox: $("frame-box"),
    themeToggle: $("theme-toggle"),
  };

  // Inspectable from the console (and by the browser tests).
  const playground = {
    mode: CONFIG.mode,
    theme: CONFIG.theme,
    chat: null,
    toolResult: null,
    widgetState: null,
    calls: [],
    followUps: [],
    openedLinks: [],
  };
  window.playground = playground;

  let frame = null;
  let widget = null; // {html, meta}
  let rpcId = 0;

  // ---------------------------------------------------------------------------------------------
  // JSON-RPC to /mcp

  async function rpc(method, params) {
    const response = await fetch(CONFIG.mcpPath, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method, params }),
    });
    if (!response.ok) throw new Error(method + ": HTTP " + response.status);
    const body = await response.json();
    if (body.error) throw new Error(method + ": " + body.error.message);
    return body.result;
  }

  function toolError(result) {
    const text = (result.content || []).map((c) => c.text || "").join(" ");
    return new Error(text || "tool error");
  }

  // The model's calls name the user, as ChatGPT's do, so the chat is bound to that user; the
  // widget's calls (forwardToolCall) name nobody: the hardest case, which the widget key covers.
  const USER = { "openai/subject": "playground-user" };

  async function tool(name, args) {
    const result = await rpc("tools/call", { name, arguments: args, _meta: USER });
    if (result.isError) throw toolError(result);
    return result;
  }

  // ---------------------------------------------------------------------------------------------
  // The model's side

  function log(text, className) {
    const li = document.createElement("li");
    li.textContent = text;
    if (className) li.className = className;
    ui.modelLog.appendChild(li);
  }

  function describe(entry) {
    const who = entry.name || entry.role || "";
    switch (entry.kind) {
      case "message":
        return who + ": " + (entry.text || "");
      case "queue_position":
        return "queue position " + entry.position;
      case "session_ended":
        return "session ended by " + (entry.endedBy || "?");
      default:
        return entry.kind.replace(/_/g, " ") + (who ? " (" + who + ")" : "");
    }
  }

  async function startChat() {
    ui.start.disabled = true;
    try {
      const session = (await tool("generate_guest_access_token", {})).structuredContent;
      log("generate_guest_access_token → session started");
      // The context a model would pass for the human agent, when given.
      const args = { sessionId: session.sessionId };
      if (ui.summary.value.trim()) args.summary = ui.summary.value.trim();
      if (ui.customer.value.trim()) args.customerName = ui.customer.value.trim();
      const created = (await tool("create_conversation", args)).structuredContent;
      playground.chat = { sessionId: session.sessionId, conversationId: created.conversationId };
      ui.conversationId.textContent = created.conversationId;
      log("create_conversation → " + created.conversationId);
      ui.sayText.disabled = ui.saySend.disabled = ui.showNow.disabled = false;
      relay();
    } catch (err) {
      log(String(err.message || err), "error");
      ui.start.disabled = false;
    }
  }

  // Read like the model does (the session's own cursor) until a human agent joins.
  async function relay() {
    while (playground.chat && !playground.toolResult) {
      let page;
      try {
        page = (await tool("list_conversation_entries", { ...playground.chat, waitSeconds: 20 }))
          .structuredContent;
      } catch (err) {
        log(String(err.message || err), "error");
        return;
      }
      if (playground.toolResult) return;
      page.entries.forEach((entry) => log(describe(entry)));
      if (page.roleInfo.isLiveAgent) {
        log("a human agent joined → show_salesforce_chat");
        await showWidget();
        return;
      }
      if (page.roleInfo.conversationEnded) return;
    }
  }

  async function say(text) {
    log("send_message: " + text);
    try {
      await tool("send_message", { ...playground.chat, text });
    } catch (err) {
      log(String(err.message || err), "error");
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The host's side

  async function showWidget() {
    if (playground.toolResult || !playground.chat) return;
    ui.showNow.disabled = true;
    try {
      // The whole CallToolResult, _meta included: the host gives that to the view.
      const result = await tool("show_salesforce_chat", { ...playground.chat });
      const read = await rpc("resources/read", { uri: CONFIG.widgetUri });
      const content = read.contents[0];
      playground.toolResult = result;
      widget = { html: content.text, meta: content._meta || {} };
      mount();
      ui.rerender.disabled = false;
    } catch (err) {
      log(String(err.message || err), "error");
      ui.showNow.disabled = false;
    }
  }

  function attr(value) {
    return String(value).replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
  }

  // The CSP a host derives from the resource's `ui.csp`: nothing beyond what it declares.
  function cspMeta(meta) {
    const csp = (meta.ui && meta.ui.csp) || {};
    const resources = (csp.resourceDomains || []).join(" ");
    const connect = (csp.connectDomains || []).join(" ") || "'none'";
    const policy = [
      "default-src 'none'",
      ("script-src 'unsafe-inline' " + resources).trim(),
      ("style-src 'unsafe-inline' " + resources).trim(),
      ("img-src data: " + resources).trim(),
      ("font-src " + (resources || "'none'")).trim(),
      "connect-src " + connect,
      "frame-src 'none'",
      "base-uri 'none'",
      "form-action 'none'",
    ].join("; ");
    return '<meta http-equiv="Content-Security-Policy" content="' + attr(policy) + '">';
  }

  // Runs inside the iframe before the widget's own script: ChatGPT's `window.openai`, delegating
  // to this page with postMessage. Serialised with toString(), so it must stay self-contained.
  function openAiShim(globals) {
    const pending = new Map();
    let nextId = 1;
    const send = (message) => window.parent.postMessage({ playground: "openai", ...message }, "*");
    const request = (method, params) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        send({ id, method, params });
      });
    window.addEventListener("message", (event) => {
      const msg = event.data;
      if (event.source !== window.parent || !msg || msg.playground !== "openai") return;
      if (msg.method === "set_globals") {
        Object.assign(window.openai, msg.params.globals);
        window.dispatchEvent(
          new CustomEvent("openai:set_globals", { detail: { globals: msg.params.globals } }),
        );
        return;
      }
      const call = pending.get(msg.id);
      if (!call) return;
      pending.delete(msg.id);
      if (msg.error) call.reject(new Error(msg.error));
      else call.resolve(msg.result);
    });
    window.openai = Object.assign(globals, {
      callTool: (name, args) => request("callTool", { name, arguments: args || {} }),
      sendFollowUpMessage: (args) => request("sendFollowUpMessage", args),
      setWidgetState: (state) => {
        window.openai.widgetState = state;
        return request("setWidgetState", { state });
      },
      notifyIntrinsicHeight: () => {},
      requestDisplayMode: () => Promise.resolve({ mode: "inline" }),
      openExternal: (args) => request("openExternal", args),
    });
  }

  function json(value) {
    // Safe inside a script element: every "<" becomes \\u003c.
    return JSON.stringify(value).replace(/</g, "\\u003c");
  }

  function openAiGlobals() {
    const late = CONFIG.lateGlobals;
    const result = playground.toolResult;
    return {
      toolInput: { ...playground.chat },
      toolOutput: late ? null : result.structuredContent,
      toolResponseMetadata: late ? null : result._meta || null,
      widgetState: playground.widgetState,
      theme: playground.theme,
      displayMode: "inline",
      maxHeight: 600,
      locale: navigator.language,
      safeArea: { insets: { top: 0, bottom: 0, left: 0, right: 0 } },
      userAgent: { device: { type: "desktop" }, capabilities: { hover: true, touch: false } },
    };
  }

  function mount() {
    let head = cspMeta(widget.meta);
    if (CONFIG.mode === "openai") {
      head += "<script>(" + openAiShim.toString() + ")(" + json(openAiGlobals()) + ");</" +
        "script>";
    }
    const html = /<head[^>]*>/i.test(widget.html)
      ? widget.html.replace(/<head[^>]*>/i, (tag) => tag + head)
      : head + widget.html;
    frame = document.createElement("iframe");
    frame.id = "widget-frame";
    frame.title = "Salesforce live chat";
    frame.setAttribute("sandbox", "allow-scripts");
    if (CONFIG.mode === "openai" && CONFIG.lateGlobals) {
      frame.addEventListener("load", () => {
        const result = playground.toolResult;
        toFrame({
          playground: "openai",
          method: "set_globals",
          params: { globals: { toolOutput: result.structuredContent, toolResponseMetadata: result._meta } },
        });
      });
    }
    frame.srcdoc = html;
    ui.frameBox.replaceChildren(frame);
  }

  function toFrame(message) {
    if (frame && frame.contentWindow) frame.contentWindow.postMessage(message, "*");
  }

  async function forwardToolCall(via, name, args) {
    playground.calls.push({ via, name, args });
    const counts = {};
    for (const call of playground.calls) counts[call.via] = (counts[call.via] || 0) + 1;
    ui.transport.textContent = Object.entries(counts)
      .map(([how, n]) => n + " via " + how)
      .join(", ");
    return rpc("tools/call", { name, arguments: args });
  }

  function followUp(text) {
    playground.followUps.push(text);
    const li = document.createElement("li");
    li.textContent = text;
    ui.followups.appendChild(li);
  }

  // host=openai: requests from the injected window.openai.
  async function onOpenAi(source, msg) {
    const reply = (body) => source.postMessage({ playground: "openai", id: msg.id, ...body }, "*");
    const params = msg.params || {};
    try {
      if (msg.method === "callTool") {
        reply({ result: await forwardToolCall("window.openai", params.name, params.arguments) });
      } else if (msg.method === "sendFollowUpMessage") {
        followUp(String(params.prompt || ""));
        reply({ result: {} });
      } else if (msg.method === "openExternal") {
        openLink(String((params && params.href) || ""));
        reply({ result: {} });
      } else if (msg.method === "setWidgetState") {
        playground.widgetState = params.state;
        reply({ result: {} });
      } else {
        reply({ error: "unknown method " + msg.method });
      }
    } catch (err) {
      reply({ error: String(err.message || err) });
    }
  }

  // A host opens links outside the view; the playground notes them (and opens nothing).
  function openLink(url) {
    playground.openedLinks.push(url);
    log("host opened a link: " + url, "host");
  }

  // host=mcp-apps: the MCP Apps JSON-RPC bridge.
  async function onBridge(source, msg) {
    const respond = (body) => source.postMessage({ jsonrpc: "2.0", id: msg.id, ...body }, "*");
    const params = msg.params || {};
    switch (msg.method) {
      case "ui/initialize":
        respond({
          result: {
            protocolVersion: "2026-01-26",
            hostInfo: { name: "miaw-mcp playground", version: CONFIG.version },
            hostCapabilities: { serverTools: {}, openLinks: {}, logging: {} },
            hostContext: {
              theme: playground.theme,
              displayMode: "inline",
              availableDisplayModes: ["inline"],
              containerDimensions: { maxHeight: 600 },
              locale: navigator.language,
              platform: "web",
              toolInfo: { tool: { name: "show_salesforce_chat" } },
            },
          },
        });
        return;
      case "ui/notifications/initialized":
        toFrame({ jsonrpc: "2.0", method: "ui/notifications/tool-input",
                  params: { arguments: { ...playground.chat } } });
        toFrame({ jsonrpc: "2.0", method: "ui/notifications/tool-result",
                  params: playground.toolResult });
        return;
      case "tools/call":
        try {
          respond({ result: await forwardToolCall("ui/* bridge", params.name, params.arguments) });
        } catch (err) {
          respond({ error: { code: -32603, message: String(err.message || err) } });
        }
        return;
      case "ui/message": {
        const blocks = Array.isArray(params.content) ? params.content : [params.content || {}];
        followUp(blocks.map((b) => (b && b.text) || "").join(" "));
        respond({ result: {} });
        return;
      }
      case "ui/open-link":
        openLink(String(params.url || ""));
        respond({ result: {} });
        return;
      case "ui/request-display-mode":
        respond({ result: { mode: "inline" } });
        return;
      default:
        if ("id" in msg) respond({ error: { code: -32601, message: "Method not found" } });
    }
  }

  window.addEventListener("message", (event) => {
    if (!frame || event.source !== frame.contentWindow) return;
    const msg = event.data;
    if (!msg || typeof msg !== "object") return;
    if (CONFIG.mode === "openai" && msg.playground === "openai") onOpenAi(event.source, msg);
    if (CONFIG.mode === "mcp-apps" && msg.jsonrpc === "2.0" && msg.method) {
      onBridge(event.source, msg);
    }
  });

  function setTheme(theme) {
    playground.theme = theme;
    document.documentElement.dataset.theme = theme;
    ui.themeToggle.setAttribute("aria-pressed", String(theme === "dark"));
    if (CONFIG.mode === "openai") {
      toFrame({ playground: "openai", method: "set_globals", params: { globals: { theme } } });
    } else {
      toFrame({ jsonrpc: "2.0", method: "ui/notifications/host-context-changed",
                params: { theme } });
    }
  }

  ui.start.addEventListener("click", startChat);
  ui.showNow.addEventListener("click", () => {
    log("show_salesforce_chat (by hand)");
    showWidget();
  });
  ui.rerender.addEventListener("click", () => {
    if (widget) mount();
  });
  ui.say.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.sayText.value.trim();
    if (!text || !playground.chat) return;
    ui.sayText.value = "";
    say(text);
  });
  ui.themeToggle.addEventListener("click", () =>
    setTheme(playground.theme === "dark" ? "light" : "dark"),
  );
})();
