// A scripted ICMP echo responder on a TUN interface, for ping-check.sh (the self-test of
// lib.sh's ping_all). Usage (root, inside a namespace): node echo-responder.mjs IFNAME
//
// It answers every IPv4/IPv6 echo request that leaves through IFNAME, except sequence number
// 10 when the ICMP message has a given size (payload + 8-byte header):
//   - 64 bytes (ping -s 56, the default): the reply is sent LATE_MS (30) ms late;
//   - 72 bytes (ping -s 64): no reply at all (a real loss).
// Prints "ready" on stdout once the interface exists. Needs `pnpm build` (uses @lattice/tun's
// dist build and native addon).
import { TunDevice } from "../../packages/tun/dist/index.js";

/** Delay of the late reply (ms): far above 2 x a loopback RTT, far below ping_all's grace. */
const LATE_MS = 30;
const LATE_SIZE = 64;
const DROP_SIZE = 72;
const SEQ = 10;

const name = process.argv[2];
if (!name) {
  console.error("usage: echo-responder.mjs IFNAME");
  process.exit(2);
}

/** RFC 1624 incremental update of a ones'-complement checksum for one changed 16-bit word. */
function updateChecksum(sum, oldWord, newWord) {
  let s = (~sum & 0xffff) + (~oldWord & 0xffff) + newWord;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** The echo reply for an echo request (a fresh copy), or null for anything else. */
function replyTo(pkt) {
  const v = pkt[0] >> 4;
  let icmp;
  let request;
  let reply;
  let srcOff;
  let addrLen;
  if (v === 4 && pkt.length >= 28 && pkt[9] === 1) {
    icmp = (pkt[0] & 15) * 4;
    [request, reply, srcOff, addrLen] = [8, 0, 12, 4];
  } else if (v === 6 && pkt.length >= 48 && pkt[6] === 58) {
    icmp = 40;
    [request, reply, srcOff, addrLen] = [128, 129, 8, 16];
  } else {
    return null;
  }
  if (pkt[icmp] !== request) return null;
  const out = Uint8Array.from(pkt);
  // Swapping source and destination leaves both checksums unchanged.
  out.set(pkt.subarray(srcOff + addrLen, srcOff + 2 * addrLen), srcOff);
  out.set(pkt.subarray(srcOff, srcOff + addrLen), srcOff + addrLen);
  out[icmp] = reply;
  const sum = (out[icmp + 2] << 8) | out[icmp + 3];
  const next = updateChecksum(sum, (request << 8) | pkt[icmp + 1], (reply << 8) | pkt[icmp + 1]);
  out[icmp + 2] = next >> 8;
  out[icmp + 3] = next & 0xff;
  return { out, seq: (pkt[icmp + 6] << 8) | pkt[icmp + 7], size: pkt.length - icmp };
}

const tun = TunDevice.open({ name, vnetHdr: false });
tun.start({
  onPackets: (b) => {
    for (let i = 0; i < b.count; i++) {
      const r = replyTo(b.buffer.subarray(b.offsets[i], b.offsets[i] + b.lengths[i]));
      if (r === null) continue;
      if (r.seq === SEQ && r.size === DROP_SIZE) continue;
      if (r.seq === SEQ && r.size === LATE_SIZE) setTimeout(() => tun.write([r.out]), LATE_MS);
      else tun.write([r.out]);
    }
  },
  onError: (e) => {
    console.error(`echo-responder: ${e.message}`);
    process.exit(e.code === "ERR_TUN_GONE" ? 0 : 1);
  },
});
process.on("SIGTERM", () => {
  tun.close();
  process.exit(0);
});
console.log("ready");
