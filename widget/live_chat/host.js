  // How the view reaches the server: only through its host. `window.openai` where the host
  // provides it (ChatGPT), otherwise the MCP Apps `ui/*` JSON-RPC bridge over postMessage.
  // Both expose the same small interface: start, callTool, followUp, openLink, loadState,
  // saveState, resized.

  function openAiHost(openai) {
    return {
      kind: "openai",
      start(on) {
        window.addEventListener("openai:set_globals", (event) => {
          const globals = (event.detail && event.detail.globals) || {};
          if ("theme" in globals) on.theme(globals.theme);
          if (globals.toolResponseMetadata || globals.toolOutput) {
            on.toolResult({
              structuredContent: openai.toolOutput,
              _meta: openai.toolResponseMetadata,
            });
          }
        });
        on.theme(openai.theme);
        if (openai.toolResponseMetadata || openai.toolOutput) {
          on.toolResult({ structuredContent: openai.toolOutput, _meta: openai.toolResponseMetadata });
        }
      },
      callTool: (name, args) => openai.callTool(name, args),
      followUp: (text) => openai.sendFollowUpMessage({ prompt: text }),
      openLink: (url) => openai.openExternal({ href: url }),
      loadState() {
        const saved = openai.widgetState;
        return saved && typeof saved === "object" ? saved.privateContent || saved : null;
      },
      saveState(state) {
        // privateContent: the transcript and the session handle are for this view only.
        const modelContent = { chat: state.closed || state.ended ? "ended" : "open" };
        const done = openai.setWidgetState({ modelContent, privateContent: state });
        if (done && typeof done.catch === "function") done.catch(() => {});
      },
      resized(height) {
        if (typeof openai.notifyIntrinsicHeight === "function") openai.notifyIntrinsicHeight(height);
      },
    };
  }

  function bridgeHost() {
    const parent = window.parent;
    const pending = new Map();
    let nextId = 1;
    let on = null;

    const post = (message) => parent.postMessage({ jsonrpc: "2.0", ...message }, "*");
    const notify = (method, params) => post({ method, params });
    const request = (method, params, timeoutMs) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        const timer = timeoutMs
          ? setTimeout(() => {
              pending.delete(id);
              reject(new Error(method + " got no answer from the host"));
            }, timeoutMs)
          : null;
        pending.set(id, { resolve, reject, timer });
        post({ id, method, params });
      });

    window.addEventListener("message", (event) => {
      if (event.source !== parent) return;
      const msg = event.data;
      if (!msg || typeof msg !== "object" || msg.jsonrpc !== "2.0") return;
      if (!("method" in msg)) {
        const call = pending.get(msg.id);
        if (!call) return;
        pending.delete(msg.id);
        clearTimeout(call.timer);
        if (msg.error) call.reject(new Error(msg.error.message || "Host error"));
        else call.resolve(msg.result);
        return;
      }
      const params = msg.params || {};
      if (msg.method === "ui/notifications/tool-result") {
        if (on) on.toolResult(params);
      } else if (msg.method === "ui/notifications/host-context-changed") {
        if (on && "theme" in params) on.theme(params.theme);
      } else if ("id" in msg) {
        if (msg.method === "ping" || msg.method === "ui/resource-teardown") {
          post({ id: msg.id, result: {} });
        } else {
          post({ id: msg.id, error: { code: -32601, message: "Method not found" } });
        }
      }
    });

    return {
      kind: "mcp-apps",
      async start(handlers) {
        on = handlers;
        const result = await request(
          "ui/initialize",
          {
            appInfo: { name: "salesforce-live-chat", version: String(CONFIG.version) },
            appCapabilities: { availableDisplayModes: ["inline"] },
            protocolVersion: "2026-01-26",
          },
          10000,
        );
        const context = (result && result.hostContext) || {};
        on.theme(context.theme);
        notify("ui/notifications/initialized", {});
      },
      callTool: (name, args) => request("tools/call", { name, arguments: args }),
      followUp: (text) => request("ui/message", { role: "user", content: { type: "text", text } }),
      openLink: (url) => request("ui/open-link", { url }, 10000),
      loadState: () => null, // no host storage on this bridge: state lives in memory
      saveState() {},
      resized(height) {
        notify("ui/notifications/size-changed", {
          width: document.documentElement.scrollWidth,
          height,
        });
      },
    };
  }

  function pickHost() {
    const openai = window.openai;
    if (openai && typeof openai.callTool === "function") return openAiHost(openai);
    if (window.parent && window.parent !== window) return bridgeHost();
    return null;
  }
