// tests/mcp/sdk_flow.mjs MACULA_BIN — the official TypeScript SDK client against the flow
// tools: over stdio (`macula flow mcp`) and over Streamable HTTP (`macula flow serve`).
// initialize, tools/list, swarm_init, agents (builtin echo, exec /bin/cat), task_submit with
// wait and progress, cancellation of a waiting task_submit (the task is cancelled), results,
// lists, metrics, tool errors (unknown swarm, bad arguments), unknown tool (-32602),
// swarm_destroy. The SDK checks every structuredContent against the tool's outputSchema.
// The operator's chaos switch: SIGUSR1 / SIGUSR2 (stdio and HTTP) and POST /admin/chaos
// (HTTP) send notifications/tools/list_changed to every session, after which tools/list
// shows / hides the chaos tools; refused without --allow-chaos / --chaos.
// Exits non-zero on any mismatch.
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError, ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const bin = process.argv[2];
if (!bin) {
  console.error("usage: node sdk_flow.mjs MACULA_BIN");
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
    console.log(`FAIL ${name}${detail !== undefined ? ": " + JSON.stringify(detail).slice(0, 600) : ""}`);
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const TOOLS = [
  "swarm_init", "swarm_status", "swarm_list", "swarm_scale", "swarm_destroy", "agent_spawn",
  "agent_list", "agent_terminate", "task_submit", "task_status", "task_result", "task_list",
  "task_cancel", "metrics",
];
const NO_POOL = { pool_min: { worker: 0, specialist: 0, scout: 0 } };
const CHAOS = ["chaos_kill_agent", "chaos_inject_latency", "chaos_kill_process"];
// Generous bounds that only keep a broken build from hanging; nothing asserts a duration.
const WAIT = 20000;

// Counts notifications/tools/list_changed on a client; next() resolves at the next one.
function watchListChanged(client) {
  const w = { count: 0, waiters: [] };
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    w.count++;
    const ready = w.waiters.filter((x) => w.count >= x.n);
    w.waiters = w.waiters.filter((x) => w.count < x.n);
    ready.forEach((x) => x.resolve(w.count));
  });
  w.until = (n, what) => withTimeout(new Promise((resolve) => (w.count >= n ? resolve(w.count) : w.waiters.push({ n, resolve }))), WAIT, what);
  return w;
}

const chaosNames = async (client) => (await client.listTools()).tools.map((x) => x.name).filter((n) => n.startsWith("chaos_"));

// Resolves when `stream` has printed text matching re.
function waitOutput(stream, re, what) {
  let buf = "";
  return withTimeout(new Promise((resolve) => {
    stream.on("data", (d) => {
      buf += d;
      if (re.test(buf)) resolve(buf);
    });
  }), WAIT, what);
}

function run(args, env) {
  return new Promise((resolve) => execFile(bin, args, { env: { ...process.env, ...env } }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr })));
}

async function exercise(label, client) {
  const t = (name) => `${label}: ${name}`;
  const call = (name, args, opts) => client.callTool({ name, arguments: args }, undefined, opts);

  const { tools } = await client.listTools();
  check(t("tools/list names the flow tools"), JSON.stringify(tools.map((x) => x.name)) === JSON.stringify(TOOLS), tools.map((x) => x.name));
  check(t("every tool has input and output schemas"), tools.every((x) => x.inputSchema?.type === "object" && x.outputSchema?.type === "object" && x.description));
  check(t("no chaos tools without chaos"), !tools.some((x) => x.name.startsWith("chaos_")));

  const swarm = `sdk-${label}`;
  const sw = await call("swarm_init", { id: swarm, topology: "star", config: NO_POOL });
  check(t("swarm_init"), sw.structuredContent?.id === swarm && sw.structuredContent?.topology === "star" && !sw.isError, sw);
  check(t("swarm_init text content is the same JSON"), JSON.parse(sw.content?.[0]?.text ?? "null")?.id === swarm, sw.content);

  const echo = await call("agent_spawn", { swarm, role: "worker", executor: { type: "builtin" }, id: `${label}-echo` });
  check(t("agent_spawn builtin"), echo.structuredContent?.id === `${label}-echo` && echo.structuredContent?.role === "worker", echo);
  const cat = await call("agent_spawn", { swarm, role: "specialist", executor: { type: "exec", argv: ["/bin/cat"] }, id: `${label}-cat` });
  check(t("agent_spawn exec /bin/cat"), cat.structuredContent?.executor?.type === "exec", cat);
  const agents = await call("agent_list", { swarm });
  check(t("agent_list"), agents.structuredContent?.agents?.length === 2, agents.structuredContent);

  // a waiting task_submit with progress: pending, running, completed
  const progress = [];
  const slow = await call("task_submit", { swarm, role: "worker", input: { op: "sleep", ms: 700 }, wait: 30000 }, { onprogress: (p) => progress.push(p) });
  check(t("task_submit wait: completed"), slow.structuredContent?.state === "completed", slow.structuredContent);
  check(t("task_submit wait: progress notifications"), progress.length >= 2 && progress.every((p, i) => i === 0 || p.progress > progress[i - 1].progress) && progress.every((p) => p.total === 4), progress);
  check(t("task_submit wait: progress names the state"), /pending|assigned|running/.test(progress[0]?.message ?? ""), progress[0]);

  // exec: /bin/cat returns its input
  const catTask = await call("task_submit", { swarm, role: "specialist", input: { hello: "cat", n: 3 }, wait: 30000 });
  check(t("exec /bin/cat result is the input"), catTask.structuredContent?.state === "completed" && catTask.structuredContent?.result?.hello === "cat" && catTask.structuredContent?.result?.n === 3, catTask.structuredContent);

  // submit without wait, then task_result and task_status
  const quick = await call("task_submit", { swarm, role: "worker", input: { v: 42 }, priority: "high" });
  const qid = quick.structuredContent?.id;
  check(t("task_submit without wait returns the task"), typeof qid === "string" && quick.structuredContent?.priority === "high", quick.structuredContent);
  const res = await call("task_result", { task: qid, wait_ms: 10000 });
  check(t("task_result"), res.structuredContent?.state === "completed" && res.structuredContent?.result?.v === 42, res.structuredContent);
  const st = await call("task_status", { task: qid });
  check(t("task_status"), st.structuredContent?.id === qid && st.structuredContent?.state === "completed", st.structuredContent);

  // cancel a waiting task_submit: the request rejects, the task is cancelled
  const ac = new AbortController();
  let seen = 0;
  const waiting = call("task_submit", { swarm, role: "worker", input: { op: "sleep", ms: 600000 }, wait: 600000 }, {
    signal: ac.signal,
    onprogress: () => {
      if (++seen === 1) ac.abort("test cancels");
    },
  });
  const err = await expectReject(withTimeout(waiting, 15000, "cancelled task_submit"));
  check(t("cancelled task_submit rejects"), err !== null && !/timeout/.test(String(err)), String(err));
  let cancelled = [];
  for (let i = 0; i < 50 && cancelled.length === 0; i++) {
    const l = await call("task_list", { swarm, state: "cancelled" });
    cancelled = l.structuredContent?.tasks ?? [];
    if (cancelled.length === 0) await sleep(100);
  }
  check(t("the cancelled request cancelled its task"), cancelled.length === 1 && cancelled[0].input?.ms === 600000, cancelled);
  const after = await call("task_submit", { swarm, role: "worker", input: { after: true }, wait: 10000 });
  check(t("the agent runs tasks after the cancel"), after.structuredContent?.state === "completed", after.structuredContent);

  // task_cancel on a queued task (dependencies on a pending one keep it waiting)
  const idle = `${swarm}-idle`;
  await call("swarm_init", { id: idle, config: NO_POOL });
  const p1 = await call("task_submit", { swarm: idle, input: 1 });
  const p2 = await call("task_submit", { swarm: idle, input: 2, dependencies: [p1.structuredContent.id] });
  const c1 = await call("task_cancel", { task: p1.structuredContent.id });
  check(t("task_cancel"), c1.structuredContent?.state === "cancelled", c1.structuredContent);
  const s2 = await call("task_status", { task: p2.structuredContent.id });
  check(t("dependent task fails with dependency_cancelled"), s2.structuredContent?.state === "failed" && /dependency_cancelled/.test(s2.structuredContent?.error ?? ""), s2.structuredContent);

  const list = await call("task_list", { swarm });
  check(t("task_list"), list.structuredContent?.tasks?.length === 5, list.structuredContent?.tasks?.map((x) => x.state));
  const status = await call("swarm_status", { swarm });
  check(t("swarm_status counts"), status.structuredContent?.tasks?.completed === 4 && status.structuredContent?.tasks?.cancelled === 1, status.structuredContent?.tasks);
  const swarms = await call("swarm_list", {});
  check(t("swarm_list"), swarms.structuredContent?.swarms?.some((s) => s.id === swarm), swarms.structuredContent?.swarms?.map((s) => s.id));
  const scaled = await call("swarm_scale", { swarm, role: "scout", count: 1 });
  check(t("swarm_scale"), scaled.structuredContent?.config?.pool_min?.scout === 1, scaled.structuredContent?.config);
  const metrics = await call("metrics", {});
  check(t("metrics"), metrics.structuredContent?.tasks?.completed >= 4 && typeof metrics.structuredContent?.observer === "object", metrics.structuredContent?.tasks);
  const term = await call("agent_terminate", { agent: `${label}-echo` });
  check(t("agent_terminate"), term.structuredContent?.id === `${label}-echo`, term.structuredContent);

  // errors
  const unknownSwarm = await call("swarm_status", { swarm: "no-such-swarm" });
  check(t("unknown swarm is isError"), unknownSwarm.isError === true && /not_found/.test(unknownSwarm.content?.[0]?.text), unknownSwarm);
  const submitUnknown = await call("task_submit", { swarm: "no-such-swarm", input: {} });
  check(t("task_submit to an unknown swarm is isError"), submitUnknown.isError === true, submitUnknown);
  const badArgs = await call("task_submit", { swarm, priority: "urgent" });
  check(t("bad arguments (2025-11-25): isError"), badArgs.isError === true && /invalid arguments/.test(badArgs.content?.[0]?.text), badArgs);
  const badRole = await call("agent_spawn", { swarm, role: "boss" });
  check(t("bad enum: isError"), badRole.isError === true, badRole);
  const unknownTool = await expectReject(call("swarm_explode", {}));
  check(t("unknown tool is -32602"), unknownTool instanceof McpError && unknownTool.code === -32602, String(unknownTool));
  const noTask = await call("task_result", { task: "00000000-0000-4000-8000-000000000000" });
  check(t("unknown task is isError"), noTask.isError === true, noTask);

  const destroyed = await call("swarm_destroy", { swarm });
  check(t("swarm_destroy"), destroyed.structuredContent?.destroyed === true, destroyed.structuredContent);
  await call("swarm_destroy", { swarm: idle });
  const gone = await call("swarm_status", { swarm });
  check(t("destroyed swarm is gone"), gone.isError === true, gone);
}

async function stdio() {
  const transport = new StdioClientTransport({ command: bin, args: ["flow", "mcp"], stderr: "inherit" });
  const client = new Client({ name: "macula-sdk-flow", version: "1.0.0" });
  await client.connect(transport);
  check("stdio: serverInfo title", client.getServerVersion()?.title === "macula flow", client.getServerVersion());
  await exercise("stdio", client);
  await client.close();
}

// stdio: `flow mcp --allow-chaos`, switched by signals.
async function stdioChaos() {
  const transport = new StdioClientTransport({ command: bin, args: ["flow", "mcp", "--allow-chaos"], stderr: "pipe" });
  const client = new Client({ name: "macula-sdk-flow-chaos", version: "1.0.0" });
  const w = watchListChanged(client);
  await client.connect(transport);
  check("stdio chaos: capabilities.tools.listChanged", client.getServerCapabilities()?.tools?.listChanged === true, client.getServerCapabilities());
  check("stdio chaos: allowed but off at start", (await chaosNames(client)).length === 0);
  const log = waitOutput(transport.stderr, /chaos tools on/, "stdio SIGUSR1 handled");
  process.kill(transport.pid, "SIGUSR1");
  await w.until(1, "list_changed after SIGUSR1");
  check("stdio chaos: SIGUSR1 sends one list_changed", w.count === 1, w.count);
  check("stdio chaos: tools/list shows the chaos tools", JSON.stringify(await chaosNames(client)) === JSON.stringify(CHAOS));
  await log;
  const killed = await client.callTool({ name: "chaos_kill_process", arguments: { name: "no_such_actor" } });
  check("stdio chaos: chaos_kill_process reaches the flow chaos actor", killed.isError === true && /not_found/.test(killed.content?.[0]?.text), killed);
  process.kill(transport.pid, "SIGUSR2");
  await w.until(2, "list_changed after SIGUSR2");
  check("stdio chaos: SIGUSR2 sends list_changed, tools/list hides them", (await chaosNames(client)).length === 0);
  const gone = await expectReject(client.callTool({ name: "chaos_kill_agent", arguments: { agent: "a" } }));
  check("stdio chaos: a hidden chaos tool is -32602", gone instanceof McpError && gone.code === -32602, String(gone));
  check("stdio chaos: exactly two list_changed", w.count === 2, w.count);
  await client.close();
}

// stdio with --task-retention 2: the oldest ended tasks are evicted (not found), totals stay.
async function stdioRetention() {
  const transport = new StdioClientTransport({ command: bin, args: ["flow", "mcp", "--task-retention", "2"], stderr: "inherit" });
  const client = new Client({ name: "macula-sdk-flow-retention", version: "1.0.0" });
  await client.connect(transport);
  const call = (name, args) => client.callTool({ name, arguments: args });
  await call("swarm_init", { id: "ret", config: NO_POOL });
  const ids = [];
  for (let i = 0; i < 4; i++) {
    const t = await call("task_submit", { swarm: "ret", input: { i } });
    ids.push(t.structuredContent.id);
    await call("task_cancel", { task: t.structuredContent.id });
  }
  await call("swarm_status", { swarm: "ret" }); // one more command: nothing else ends
  const first = await call("task_status", { task: ids[0] });
  check("stdio retention: an evicted task is not_found", first.isError === true && /not_found/.test(first.content?.[0]?.text) && /task_retention/.test(first.content?.[0]?.text), first.content);
  const last = await call("task_status", { task: ids[3] });
  check("stdio retention: the newest ended task is kept", last.structuredContent?.state === "cancelled", last);
  const list = await call("task_list", { swarm: "ret" });
  check("stdio retention: task_list holds the 2 kept", list.structuredContent?.tasks?.length === 2 && list.structuredContent.tasks.every((t) => ids.slice(2).includes(t.id)), list.structuredContent);
  const metrics = await call("metrics", {});
  const m = metrics.structuredContent;
  check("stdio retention: metrics count 2 kept, the observer saw 4 end", m?.tasks?.cancelled === 2 && m?.observer?.events?.task_cancelled === 4, m);
  await client.close();
}

// stdio without --chaos/--allow-chaos: SIGUSR1 is refused (said on stderr), nothing changes.
async function stdioChaosRefused() {
  const transport = new StdioClientTransport({ command: bin, args: ["flow", "mcp"], stderr: "pipe", env: { ...process.env, MACULA_FLOW_CHAOS: "" } });
  const client = new Client({ name: "macula-sdk-flow-chaos", version: "1.0.0" });
  const w = watchListChanged(client);
  await client.connect(transport);
  const refused = waitOutput(transport.stderr, /chaos is not allowed/, "stdio refusal");
  process.kill(transport.pid, "SIGUSR1");
  await refused;
  check("stdio no chaos: SIGUSR1 refused, no chaos tools", (await chaosNames(client)).length === 0 && w.count === 0, w.count);
  await client.close();
}

function startServe(home, extra = []) {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, HOME: home, HEALTH_PORT: "0", MACULA_HEALTH_ADDR: "127.0.0.1", MACULA_MCP_PORT: "0", MACULA_QUIC_PORT: "0" };
    delete env.MACULA_FLOW_CHAOS;
    const child = spawn(bin, ["flow", "serve", "--data-dir", join(home, "data"), ...extra], { env, stdio: ["ignore", "pipe", "pipe"] });
    child.stderr.pipe(process.stderr);
    let buf = "";
    const timer = setTimeout(() => reject(new Error("flow serve did not start")), 15000);
    child.stdout.on("data", (d) => {
      buf += d;
      const m = /mcp {8}(http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(buf);
      if (m && /ready/.test(buf)) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.on("exit", (code) => reject(new Error(`flow serve exited ${code}`)));
  });
}

async function http() {
  const home = mkdtempSync(join(tmpdir(), "macula-sdk-flow-"));
  const { child, url } = await startServe(home);
  try {
    const transport = new StreamableHTTPClientTransport(new URL(url));
    const client = new Client({ name: "macula-sdk-flow", version: "1.0.0" });
    await client.connect(transport);
    check("http: session id assigned", /^[0-9a-f]{32}$/.test(transport.sessionId ?? ""), transport.sessionId);
    await exercise("http", client);
    const admin = new URL("/admin/chaos", url);
    const refused = await fetch(admin, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ chaos: true }) });
    const rb = await refused.json();
    check("http no chaos: POST /admin/chaos on is 403 chaos_not_allowed", refused.status === 403 && rb.error === "chaos_not_allowed", { status: refused.status, rb });
    check("http no chaos: still no chaos tools", (await chaosNames(client)).length === 0);
    const cli = await run(["flow", "chaos", "on", "--url", url]);
    check("http no chaos: `macula flow chaos on` exits 1", cli.code === 1 && /not allowed/.test(cli.stderr), cli);
    await transport.terminateSession();
    await client.close();
    const exited = new Promise((r) => child.on("exit", (code, sig) => r({ code, sig })));
    child.kill("SIGTERM");
    const how = await withTimeout(exited, 10000, "flow serve exit");
    check("http: flow serve stops cleanly on SIGTERM", how.code === 0, how);
  } finally {
    child.kill("SIGKILL");
    rmSync(home, { recursive: true, force: true });
  }
}

// HTTP: `flow serve --allow-chaos`, two sessions with GET streams; switched by the admin
// endpoint, the CLI and signals.
async function httpChaos() {
  const home = mkdtempSync(join(tmpdir(), "macula-sdk-flow-"));
  const { child, url } = await startServe(home, ["--allow-chaos"]);
  try {
    const sessions = [];
    for (let i = 0; i < 2; i++) {
      const transport = new StreamableHTTPClientTransport(new URL(url));
      const client = new Client({ name: `macula-sdk-flow-chaos-${i}`, version: "1.0.0" });
      const w = watchListChanged(client);
      await client.connect(transport);
      sessions.push({ transport, client, w });
    }
    const [a, b] = sessions;
    check("http chaos: capabilities.tools.listChanged", a.client.getServerCapabilities()?.tools?.listChanged === true, a.client.getServerCapabilities());
    check("http chaos: allowed but off at start", (await chaosNames(a.client)).length === 0);
    const admin = new URL("/admin/chaos", url);
    const post = (body, headers = {}) => fetch(admin, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });

    const foreign = await post({ chaos: true }, { Origin: "http://evil.example" });
    check("http chaos: foreign Origin on /admin/chaos is 403", foreign.status === 403, foreign.status);
    const plain = await fetch(admin, { method: "POST", headers: { "Content-Type": "text/plain" }, body: "{\"chaos\":true}" });
    check("http chaos: /admin/chaos without JSON content type is 415", plain.status === 415, plain.status);
    const bad = await post({ chaos: "yes" });
    check("http chaos: a bad body is 400", bad.status === 400, bad.status);
    check("http chaos: refusals changed nothing", (await chaosNames(a.client)).length === 0 && a.w.count === 0 && b.w.count === 0, [a.w.count, b.w.count]);
    const viaMcp = await expectReject(a.client.callTool({ name: "chaos_kill_process", arguments: { name: "x" } }));
    check("http chaos: an MCP client cannot call a chaos tool while off", viaMcp instanceof McpError && viaMcp.code === -32602, String(viaMcp));

    const on = await post({ chaos: true });
    const onb = await on.json();
    check("http chaos: POST /admin/chaos on", on.status === 200 && onb.chaos === true && onb.changed === true && onb.notified === 2, onb);
    await Promise.all([a.w.until(1, "session a list_changed (on)"), b.w.until(1, "session b list_changed (on)")]);
    check("http chaos: both sessions got list_changed on their GET streams", a.w.count === 1 && b.w.count === 1, [a.w.count, b.w.count]);
    check("http chaos: tools/list shows the chaos tools (a)", JSON.stringify(await chaosNames(a.client)) === JSON.stringify(CHAOS));
    check("http chaos: tools/list shows the chaos tools (b)", JSON.stringify(await chaosNames(b.client)) === JSON.stringify(CHAOS));
    const killed = await b.client.callTool({ name: "chaos_kill_process", arguments: { name: "no_such_actor" } });
    check("http chaos: chaos_kill_process reaches the flow chaos actor", killed.isError === true && /not_found/.test(killed.content?.[0]?.text), killed);
    const again = await (await post({ chaos: true })).json();
    check("http chaos: switching on again changes nothing", again.changed === false && again.notified === 0, again);

    const status = await run(["flow", "chaos", "status", "--url", url]);
    check("http chaos: `macula flow chaos status`", status.code === 0 && /chaos on/.test(status.stdout), status);
    const off = await run(["flow", "chaos", "off", "--url", url]);
    check("http chaos: `macula flow chaos off`", off.code === 0 && /chaos off/.test(off.stdout), off);
    await Promise.all([a.w.until(2, "session a list_changed (off)"), b.w.until(2, "session b list_changed (off)")]);
    check("http chaos: tools/list hides the chaos tools", (await chaosNames(a.client)).length === 0 && (await chaosNames(b.client)).length === 0);

    child.kill("SIGUSR1");
    await Promise.all([a.w.until(3, "session a list_changed (SIGUSR1)"), b.w.until(3, "session b list_changed (SIGUSR1)")]);
    check("http chaos: SIGUSR1 shows the chaos tools", JSON.stringify(await chaosNames(a.client)) === JSON.stringify(CHAOS));
    child.kill("SIGUSR2");
    await Promise.all([a.w.until(4, "session a list_changed (SIGUSR2)"), b.w.until(4, "session b list_changed (SIGUSR2)")]);
    check("http chaos: SIGUSR2 hides them", (await chaosNames(b.client)).length === 0);
    check("http chaos: one list_changed per switch and session", a.w.count === 4 && b.w.count === 4, [a.w.count, b.w.count]);

    for (const s of sessions) {
      await s.transport.terminateSession();
      await s.client.close();
    }
    const exited = new Promise((r) => child.on("exit", (code, sig) => r({ code, sig })));
    child.kill("SIGTERM");
    const how = await withTimeout(exited, 10000, "flow serve exit");
    check("http chaos: flow serve stops cleanly on SIGTERM", how.code === 0, how);
  } finally {
    child.kill("SIGKILL");
    rmSync(home, { recursive: true, force: true });
  }
}

try {
  await stdio();
  await stdioChaos();
  await stdioChaosRefused();
  await stdioRetention();
  await http();
  await httpChaos();
} catch (e) {
  failed++;
  console.log(`FAIL exception: ${e?.stack ?? e}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
