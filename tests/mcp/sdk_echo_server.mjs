// tests/mcp/sdk_echo_server.mjs [--http PORT] — the benchmark's reference: a server written
// with the official TypeScript SDK (McpServer) serving the same `echo {text} -> {text}` tool
// as `macula mcp-fixture` (inputSchema and outputSchema, structured result plus text), over
// stdio (default) or stateful Streamable HTTP on 127.0.0.1:PORT/mcp (one transport per
// session, JSON responses as macula gives for immediate answers). With --http it prints
// "listening http://127.0.0.1:P/mcp" on stderr.
import { randomUUID } from "node:crypto";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

function makeServer() {
  const server = new McpServer({ name: "sdk-echo", version: "1.0.0" });
  server.registerTool(
    "echo",
    {
      title: "echo",
      description: "Echoes its text",
      inputSchema: { text: z.string() },
      outputSchema: { text: z.string() },
    },
    async ({ text }) => ({ content: [{ type: "text", text: JSON.stringify({ text }) }], structuredContent: { text } }),
  );
  return server;
}

const i = process.argv.indexOf("--http");
if (i < 0) {
  await makeServer().connect(new StdioServerTransport());
} else {
  const port = Number(process.argv[i + 1] ?? 0);
  const app = createMcpExpressApp({ host: "127.0.0.1" });
  const transports = new Map();
  app.post("/mcp", async (req, res) => {
    const sid = req.headers["mcp-session-id"];
    let transport = sid ? transports.get(sid) : undefined;
    if (!transport) {
      if (sid || !isInitializeRequest(req.body)) {
        res.status(sid ? 404 : 400).json({ jsonrpc: "2.0", error: { code: -32000, message: "bad session" }, id: null });
        return;
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: true,
        onsessioninitialized: (id) => transports.set(id, transport),
      });
      transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
      await makeServer().connect(transport);
    }
    await transport.handleRequest(req, res, req.body);
  });
  const http = app.listen(port, "127.0.0.1", () => {
    console.error(`listening http://127.0.0.1:${http.address().port}/mcp`);
  });
  process.on("SIGTERM", () => process.exit(0));
}
