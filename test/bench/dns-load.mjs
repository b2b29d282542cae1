// A small DNS load generator for bench:dns (figures, not a test). Sends A queries for NAME
// to SERVER:53 over UDP (or TCP with --tcp: one connection per worker, queries pipelined
// one at a time) from CONC concurrent workers for SECONDS, each worker waiting for its
// answer (or a 1 s timeout) before the next query. Prints one JSON line:
// {"qps", "p50Ms", "p99Ms", "sent", "answered", "timeouts", "rcodes"}.
// Usage: node dns-load.mjs SERVER NAME [--conc 32] [--seconds 3] [--tcp]
import dgram from "node:dgram";
import net from "node:net";

const args = process.argv.slice(2);
const [server, name] = args;
const opt = (k, d) => {
  const i = args.indexOf(k);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const conc = opt("--conc", 32);
const seconds = opt("--seconds", 3);
const tcp = args.includes("--tcp");
if (!server || !name) {
  console.error("usage: node dns-load.mjs SERVER NAME [--conc N] [--seconds S] [--tcp]");
  process.exit(2);
}

function query(id) {
  const labels = name.split(".").filter(Boolean).flatMap((l) => [l.length, ...Buffer.from(l)]);
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h[2] = 0x01; // RD
  h.writeUInt16BE(1, 4);
  return Buffer.concat([h, Buffer.from([...labels, 0, 0, 1, 0, 1])]);
}

const lat = [];
const rcodes = {};
let sent = 0;
let timeouts = 0;
const end = performance.now() + seconds * 1000;
const family = server.includes(":") ? "udp6" : "udp4";

function udpWorker(w) {
  return new Promise((resolve) => {
    const s = dgram.createSocket(family);
    let id = w << 10;
    let t0 = 0;
    let timer;
    const next = () => {
      if (performance.now() >= end) {
        s.close();
        return resolve();
      }
      id = (id + 1) & 0xffff;
      t0 = performance.now();
      sent++;
      s.send(query(id), 53, server);
      timer = setTimeout(() => {
        timeouts++;
        next();
      }, 1000);
    };
    s.on("message", (m) => {
      if (m.length < 12 || m.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      lat.push(performance.now() - t0);
      rcodes[m[3] & 0x0f] = (rcodes[m[3] & 0x0f] ?? 0) + 1;
      next();
    });
    s.on("error", () => {});
    next();
  });
}

function tcpWorker(w) {
  return new Promise((resolve) => {
    const s = net.connect({ host: server, port: 53, noDelay: true });
    let id = w << 10;
    let t0 = 0;
    let buf = Buffer.alloc(0);
    const next = () => {
      if (performance.now() >= end) {
        s.destroy();
        return resolve();
      }
      id = (id + 1) & 0xffff;
      const q = query(id);
      const l = Buffer.alloc(2);
      l.writeUInt16BE(q.length);
      t0 = performance.now();
      sent++;
      s.write(Buffer.concat([l, q]));
    };
    s.on("connect", next);
    s.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const m = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + m.length);
        if (m.readUInt16BE(0) !== id) continue;
        lat.push(performance.now() - t0);
        rcodes[m[3] & 0x0f] = (rcodes[m[3] & 0x0f] ?? 0) + 1;
        next();
      }
    });
    s.on("error", () => resolve());
    s.on("close", () => resolve());
  });
}

const t0 = performance.now();
await Promise.all(Array.from({ length: conc }, (_, i) => (tcp ? tcpWorker(i) : udpWorker(i))));
const took = (performance.now() - t0) / 1000;
lat.sort((a, b) => a - b);
const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] : NaN);
console.log(JSON.stringify({ qps: Math.round(lat.length / took), p50Ms: +pct(0.5).toFixed(3), p99Ms: +pct(0.99).toFixed(3), sent, answered: lat.length, timeouts, rcodes }));
