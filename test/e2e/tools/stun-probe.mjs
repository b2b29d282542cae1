#!/usr/bin/env node
// stun-probe LOCAL_PORT HOST:PORT [HOST:PORT...]: from ONE UDP socket bound to LOCAL_PORT,
// sends a STUN Binding request to each server and prints one JSON line per answer:
// {"server":"HOST:PORT","mapped":"IP:PORT"} (or {"server":…,"error":"timeout"} after 3 s).
// The e2e harness uses it to check what a NAT router does to a node's socket (endpoint-
// independent mapping = the same mapped address for every server). Uses @lattice/stun's
// built codec (run `pnpm exec tsc -b` first).
import dgram from "node:dgram";
import { randomBytes } from "node:crypto";
import { createBindingRequest, parseBindingResponse } from "../../../packages/stun/dist/index.js";

const [localPort, ...servers] = process.argv.slice(2);
if (localPort === undefined || servers.length === 0) {
  process.stderr.write("usage: stun-probe LOCAL_PORT HOST:PORT [HOST:PORT...]\n");
  process.exit(2);
}
const sock = dgram.createSocket("udp4");
await new Promise((res) => sock.bind(Number(localPort), res));
const pending = new Map();
sock.on("message", (msg) => {
  const r = parseBindingResponse(new Uint8Array(msg));
  if (!r.ok) return;
  const id = Buffer.from(r.value.transactionId).toString("hex");
  const p = pending.get(id);
  if (p === undefined) return;
  pending.delete(id);
  p(`${Array.from(r.value.mapped.ip).join(".")}:${r.value.mapped.port}`);
});
for (const server of servers) {
  const i = server.lastIndexOf(":");
  const { transactionId, packet } = createBindingRequest((n) => new Uint8Array(randomBytes(n)));
  let timer;
  const answer = new Promise((res) => {
    pending.set(Buffer.from(transactionId).toString("hex"), res);
    timer = setTimeout(() => res(null), 3000);
  });
  sock.send(packet, Number(server.slice(i + 1)), server.slice(0, i));
  const mapped = await answer;
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(mapped === null ? { server, error: "timeout" } : { server, mapped }) + "\n");
}
sock.close();
