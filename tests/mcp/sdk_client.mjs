// tests/mcp/sdk_client.mjs MACULA_BIN — drives `macula mcp-fixture` with the official
// TypeScript SDK client over stdio and over Streamable HTTP: initialize, tools/list,
// tools/call (structured results, progress, cancellation, tool errors, protocol errors),
// list_changed, logging, session termination. Exits non-zero on any mismatch.
import { spawn } from "node:child_process";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  LATEST_PROTOCOL_VERSION,
  McpError,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const bin = process.argv[2];
if (!bin) {
  console.error("usage: node sdk_client.mjs MACULA_BIN");
  process.exit(2);
}

let passed = 0;
let failed = 0;
function check(name, cond, detail) {
  if (cond) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}${detail !== undefined ? ": " + JSON.stringify(detail) : ""}`);
  }
}

async function expectReject(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return e;
  }
}

function withTimeout(promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms)),
  ]);
}

async function exercise(label, client) {
  const t = (name) => `${label}: ${name}`;
  check(t("serverInfo.name"), client.getServerVersion()?.name === "macula", client.getServerVersion());
  check(t("tools.listChanged capability"), client.getServerCapabilities()?.tools?.listChanged === true);
  check(t("logging capability"), client.getServerCapabilities()?.logging !== undefined);
  check(t("instructions"), /fixture/.test(client.getInstructions() ?? ""));

  let changed = 0;
  let notifyChanged;
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    changed++;
    if (notifyChanged) notifyChanged();
  });

  const list = await client.listTools();
  const names = list.tools.map((x) => x.name).sort();
  check(t("tools/list names"), JSON.stringify(names) === JSON.stringify(["add", "echo", "fail", "slow", "toggle_extra"]), names);
  const add = list.tools.find((x) => x.name === "add");
  check(t("add has input and output schemas"), add?.inputSchema?.type === "object" && add?.outputSchema?.type === "object");

  const echo = await client.callTool({ name: "echo", arguments: { text: "héllo" } });
  check(t("echo structuredContent"), echo.structuredContent?.text === "héllo", echo);
  check(t("echo text content"), echo.content?.[0]?.type === "text" && JSON.parse(echo.content[0].text).text === "héllo");

  const sum = await client.callTool({ name: "add", arguments: { a: 40, b: 2 } });
  check(t("add"), sum.structuredContent?.sum === 42 && !sum.isError, sum);

  const progress = [];
  const slow = await client.callTool(
    { name: "slow", arguments: { steps: 3, interval_ms: 20 } },
    undefined,
    { onprogress: (p) => progress.push(p) },
  );
  check(t("slow result"), slow.structuredContent?.steps === 3, slow);
  // The server sends progress 1, 2, 3 and then the response, in that order (the C tests check
  // the wire). Over stdio the SDK may handle the response before the last notification read in
  // the same chunk and drop that notification, so at least the first two must arrive.
  check(t("progress notifications"), progress.length >= 2 && progress.every((p, i) => p.progress === i + 1 && p.total === 3), progress);
  check(t("progress message"), progress[0]?.message === "step 1 of 3", progress[0]);

  // cancellation: abort after the first progress notification
  const ac = new AbortController();
  let seen = 0;
  const cancelled = client.callTool(
    { name: "slow", arguments: { steps: 1000, interval_ms: 20 } },
    undefined,
    {
      signal: ac.signal,
      onprogress: () => {
        if (++seen === 1) ac.abort("test cancels");
      },
    },
  );
  const err = await expectReject(withTimeout(cancelled, 10000, "cancelled call"));
  check(t("cancelled call rejects"), err !== null && !/timeout/.test(String(err)), String(err));
  await client.ping();
  check(t("session alive after cancel"), true);

  const failRes = await client.callTool({ name: "fail", arguments: {} });
  check(t("tool failure is isError"), failRes.isError === true && /always fails/.test(failRes.content?.[0]?.text), failRes);

  const unknown = await expectReject(client.callTool({ name: "no_such_tool", arguments: {} }));
  check(t("unknown tool is -32602"), unknown instanceof McpError && unknown.code === -32602, String(unknown));

  const invalid = await client.callTool({ name: "add", arguments: { a: "x", b: 1 } });
  check(t("invalid arguments (2025-11-25): isError"), invalid.isError === true && /expected integer/.test(invalid.content?.[0]?.text), invalid);

  await client.setLoggingLevel("debug");
  check(t("logging/setLevel"), true);

  // list_changed when a tool is switched on
  const gotChange = new Promise((resolve) => { notifyChanged = resolve; });
  await client.callTool({ name: "toggle_extra", arguments: { enabled: true } });
  await withTimeout(gotChange, 5000, "list_changed").catch(() => {});
  check(t("notifications/tools/list_changed"), changed >= 1, changed);
  const list2 = await client.listTools();
  check(t("extra listed after switch-on"), list2.tools.some((x) => x.name === "extra"));
  const extra = await client.callTool({ name: "extra", arguments: {} });
  check(t("extra callable"), extra.isError !== true, extra);
  await client.callTool({ name: "toggle_extra", arguments: { enabled: false } });
}

async function stdio() {
  const transport = new StdioClientTransport({ command: bin, args: ["mcp-fixture"], stderr: "inherit" });
  const client = new Client({ name: "macula-sdk-test", version: "1.0.0" });
  await client.connect(transport);
  await exercise("stdio", client);
  await client.close();
}

function startHttpServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ["mcp-fixture", "--http", "0"], { stdio: ["ignore", "ignore", "pipe"] });
    let buf = "";
    const timer = setTimeout(() => reject(new Error("server did not start")), 10000);
    child.stderr.on("data", (d) => {
      buf += d;
      const m = /listening (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  });
}

async function http() {
  const { child, url } = await startHttpServer();
  try {
    const transport = new StreamableHTTPClientTransport(new URL(url));
    const client = new Client({ name: "macula-sdk-test", version: "1.0.0" });
    await client.connect(transport);
    check("http: session id assigned", /^[0-9a-f]{32}$/.test(transport.sessionId ?? ""), transport.sessionId);
    check("http: negotiated protocol", transport.protocolVersion === LATEST_PROTOCOL_VERSION, transport.protocolVersion);
    await exercise("http", client);
    const sid = transport.sessionId;
    await transport.terminateSession();
    const after = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": sid },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
    });
    check("http: terminated session answers 404", after.status === 404, after.status);
    await client.close();
    const bad = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", origin: "http://evil.example" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "x", version: "1" } } }),
    });
    check("http: foreign Origin answers 403", bad.status === 403, bad.status);
  } finally {
    child.kill("SIGTERM");
  }
}

try {
  await stdio();
  await http();
} catch (e) {
  failed++;
  console.log(`FAIL exception: ${e?.stack ?? e}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
