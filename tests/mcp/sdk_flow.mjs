// tests/mcp/sdk_flow.mjs MACULA_BIN — the official TypeScript SDK client against the flow
// tools: over stdio (`macula flow mcp`) and over Streamable HTTP (`macula flow serve`).
// initialize, tools/list, swarm_init, agents (builtin echo, exec /bin/cat), task_submit with
// wait and progress, cancellation of a waiting task_submit (the task is cancelled), results,
// lists, metrics, tool errors (unknown swarm, bad arguments), unknown tool (-32602),
// swarm_destroy. The SDK checks every structuredContent against the tool's outputSchema.
// Exits non-zero on any mismatch.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";

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

function startServe(home) {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, HOME: home, HEALTH_PORT: "0", MACULA_HEALTH_ADDR: "127.0.0.1", MACULA_MCP_PORT: "0" };
    delete env.MACULA_FLOW_CHAOS;
    const child = spawn(bin, ["flow", "serve", "--data-dir", join(home, "data")], { env, stdio: ["ignore", "pipe", "inherit"] });
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

try {
  await stdio();
  await http();
} catch (e) {
  failed++;
  console.log(`FAIL exception: ${e?.stack ?? e}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
