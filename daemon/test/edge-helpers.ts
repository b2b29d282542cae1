// Shared by the edge tests: a scripted stand-in for the WireGuard device, an IPv4/UDP
// packet builder and a polling wait.
import type { DeviceSnapshot, DeviceUpdate, Endpoint, OutgoingDatagram } from "@lattice/wireguard";
import type { EdgeDevice } from "../src/wg/edge.js";

/** Bytes as text. */
export const text = (b: Uint8Array): string => Buffer.from(b).toString();

/** Stand-in device: forwards TUN packets to `peer` as datagrams, scripted by datagram text. */
export class ScriptedDevice implements EdgeDevice {
  fromTun: Uint8Array[] = [];
  received: { text: string; from: Endpoint }[] = [];
  applied: DeviceUpdate[] = [];
  ticks = 0;
  deadline: number | undefined;
  /** setUp() calls, in order. */
  upCalls: boolean[] = [];
  private outD: OutgoingDatagram[] = [];
  private outP: Uint8Array[] = [];
  constructor(
    private readonly peer: Endpoint,
    private readonly now: () => number,
  ) {}
  applyConfig(u: DeviceUpdate): void {
    this.applied.push(u);
  }
  snapshot(): DeviceSnapshot {
    return { privateKey: null, listenPort: 0, fwmark: 0, peers: [] };
  }
  sendPackets(batch: readonly Uint8Array[]): void {
    for (const p of batch) {
      this.fromTun.push(p);
      this.outD.push({ data: p, to: this.peer });
    }
  }
  receiveDatagram(data: Uint8Array, from: Endpoint): void {
    const t = text(data);
    if (t === "boom") throw new Error("scripted device failure");
    this.received.push({ text: t.startsWith("packet:") ? "packet" : t, from });
    if (t.startsWith("packet:")) this.outP.push(Uint8Array.from(Buffer.from(t.slice(7), "hex")));
    if (t === "arm") this.deadline = this.now() + 30;
    if (t === "echo") this.outD.push({ data: Buffer.from("echoed"), to: from });
    // Larger than any UDP datagram: the kernel refuses it (EMSGSIZE).
    if (t === "huge") this.outD.push({ data: Buffer.alloc(70_000), to: from });
  }
  setUp(up: boolean): void {
    this.upCalls.push(up);
  }
  tick(): void {
    if (this.deadline === undefined || this.now() < this.deadline) return;
    this.ticks++;
    this.deadline = undefined;
    this.outD.push({ data: Buffer.from("tick"), to: this.peer });
  }
  nextDeadline(): number | undefined {
    return this.deadline;
  }
  takeDatagrams(): OutgoingDatagram[] {
    const d = this.outD;
    this.outD = [];
    return d;
  }
  takePackets(): Uint8Array[] {
    const p = this.outP;
    this.outP = [];
    return p;
  }
}

/** An IPv4 UDP packet 10.81.0.2:9 → 10.81.0.1:9 (checksum 0 = none). */
export function udpPacket(payload: string): Uint8Array {
  const body = Buffer.from(payload);
  const p = Buffer.alloc(28 + body.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 17;
  p.set([10, 81, 0, 2], 12);
  p.set([10, 81, 0, 1], 16);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += p.readUInt16BE(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  p.writeUInt16BE(~s & 0xffff, 10);
  p.writeUInt16BE(9, 20);
  p.writeUInt16BE(9, 22);
  p.writeUInt16BE(8 + body.length, 24);
  body.copy(p, 28);
  return p;
}

export async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

