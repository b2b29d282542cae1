// A tiny WireGuard peer on top of the compiled @lattice/wireguard Device, for the
// interop test against Debian's wireguard-go (see ../interop-wireguard-go.test.ts).
// It answers ICMP echo requests sent to its tunnel address and, in "initiate" mode,
// pings the other side first. Prints one line per event on stdout.
// Usage: node wg-peer.mjs <privHex> <peerPubHex> <listenPort> <peerPort> <myTunIp> <peerTunIp> <initiate|respond> [pskHex]
import dgram from "node:dgram";
import { randomBytes } from "node:crypto";
import { Device, Endpoint } from "../../dist/index.js";

const [privHex, peerPubHex, listenPort, peerPort, myIp, peerIp, mode, pskHex] = process.argv.slice(2);
const hexb = (h) => new Uint8Array(Buffer.from(h, "hex"));
const ipb = (s) => s.split(".").map(Number);

function checksum(b, start, end) {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (b[i] << 8) | (i + 1 < end ? b[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function icmpEcho(src, dst, type, id, seq, payload) {
  const p = new Uint8Array(20 + 8 + payload.length);
  p[0] = 0x45; p[2] = p.length >> 8; p[3] = p.length & 255; p[8] = 64; p[9] = 1;
  p.set(src, 12); p.set(dst, 16);
  const c = checksum(p, 0, 20); p[10] = c >> 8; p[11] = c & 255;
  p[20] = type; p[24] = id >> 8; p[25] = id & 255; p[26] = seq >> 8; p[27] = seq & 255;
  p.set(payload, 28);
  const ic = checksum(p, 20, p.length); p[22] = ic >> 8; p[23] = ic & 255;
  return p;
}

const start = process.hrtime.bigint();
const now = () => Number(process.hrtime.bigint() - start) / 1e6;
const dev = new Device({ now, random: (n) => new Uint8Array(randomBytes(n)) });
dev.applyConfig({
  privateKey: hexb(privHex), replacePeers: true,
  peers: [{ publicKey: hexb(peerPubHex), remove: false, updateOnly: false, replaceAllowedIps: true,
    endpoint: Endpoint.fromAddress("127.0.0.1", Number(peerPort)),
    presharedKey: pskHex ? hexb(pskHex) : undefined,
    allowedIps: [{ address: peerIp, family: 4, bits: 32 }] }],
});
const sock = dgram.createSocket("udp4");
let timer;
function flush() {
  for (const p of dev.takePackets()) {
    if (p[9] === 1 && p[20] === 8) {
      console.log("ECHO_REQUEST");
      dev.sendPacket(icmpEcho(p.subarray(16, 20), p.subarray(12, 16), 0, (p[24] << 8) | p[25], (p[26] << 8) | p[27], p.subarray(28)));
    } else if (p[9] === 1 && p[20] === 0) {
      console.log("ECHO_REPLY");
    } else console.log("PACKET", p.length);
  }
  for (const d of dev.takeDatagrams()) sock.send(d.data, d.to.port, d.to.address);
  clearTimeout(timer);
  const next = dev.nextDeadline();
  if (next !== undefined) timer = setTimeout(() => { dev.tick(); flush(); }, Math.max(0, next - now()) + 1);
}
sock.on("message", (msg, rinfo) => {
  dev.receiveDatagram(new Uint8Array(msg), Endpoint.fromAddress(rinfo.address, rinfo.port));
  flush();
});
sock.bind(Number(listenPort), "127.0.0.1", () => {
  console.log("READY");
  if (mode === "initiate") {
    dev.sendPacket(icmpEcho(ipb(myIp), ipb(peerIp), 8, 0x1234, 1, new Uint8Array(56).fill(0x61)));
    flush();
  }
});
setInterval(() => console.log("STATS " + JSON.stringify(dev.stats().drops, (k, v) => v)), 5000).unref();
process.on("SIGTERM", () => process.exit(0));
