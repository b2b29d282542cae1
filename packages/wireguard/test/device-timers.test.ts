/**
 * The timer actions after wireguard-go timers.go: a new handshake and a handshake
 * retransmit forget the peer's sticky source first ("in case this is the cause of
 * trouble"), and the device's next deadline (now from a heap) is always the earliest
 * timer of any peer.
 */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { Endpoint, type OutgoingDatagram } from "../src/api.js";
import { KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_TIMEOUT } from "../src/constants.js";
import { DeadlineHeap, type HeapSlot } from "../src/deadlines.js";
import { MESSAGE_INITIATION, MESSAGE_TRANSPORT } from "../src/messages.js";
import { Pair, peerOf, peerUpdate, seededRandom } from "./harness.js";
import { Device } from "../src/device.js";

/** A pair where B sees A behind a sticky source, and A's datagrams then stop reaching B. */
function stickyPair(): { pair: Pair; fromB: OutgoingDatagram[] } {
  const pair = new Pair({ seed: "sticky" });
  pair.aSourceAtB = Endpoint.fromAddress("10.0.0.1", 51820, { address: "10.0.0.2", ifindex: 3 })!;
  pair.send("a");
  pair.advance(50);
  expect(pair.b.received.length).toBe(1);
  expect(peerOf(pair.b.dev, pair.a.pub).endpoint!.src).toEqual({ address: "10.0.0.2", ifindex: 3 });
  const fromB: OutgoingDatagram[] = [];
  pair.filter = (d, from) => {
    if (from === "b") fromB.push(d);
    return from === "b"; // A → B is cut
  };
  return { pair, fromB };
}

describe("sticky source and handshake timers", () => {
  test("new-handshake timer: the initiation goes out without the sticky source", () => {
    const { pair, fromB } = stickyPair();
    pair.send("b"); // data with no answer arms newHandshake (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT)
    pair.advance(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + 400);
    const data = fromB.filter((d) => d.data[0] === MESSAGE_TRANSPORT);
    const inits = fromB.filter((d) => d.data[0] === MESSAGE_INITIATION);
    expect(data[0]!.to.src).toEqual({ address: "10.0.0.2", ifindex: 3 }); // before: from the sticky source
    expect(inits.length).toBeGreaterThanOrEqual(1);
    for (const i of inits) expect(i.to.src).toBeUndefined();
    expect(inits[0]!.to.toString()).toBe("10.0.0.1:51820");
  });

  test("retransmit timer: the first initiation keeps the source, retransmits drop it", () => {
    const { pair, fromB } = stickyPair();
    pair.advance(REJECT_AFTER_TIME + 1_000); // B's session expires; nothing was sent meanwhile
    fromB.length = 0;
    pair.send("b"); // no usable session: an initiation from the send path
    pair.advance(REKEY_TIMEOUT + 400); // one retransmit
    const inits = fromB.filter((d) => d.data[0] === MESSAGE_INITIATION);
    expect(inits.length).toBe(2);
    expect(inits[0]!.to.src).toEqual({ address: "10.0.0.2", ifindex: 3 });
    expect(inits[1]!.to.src).toBeUndefined();
  });
});

describe("next deadline from a heap", () => {
  test("property: the heap's minimum is the minimum of the keys set, through sets and removals", () => {
    type Item = HeapSlot & { id: number; key: number | undefined };
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(19), fc.option(fc.integer({ min: 0, max: 1000 }))), { maxLength: 300 }), (ops) => {
        const items: Item[] = Array.from({ length: 20 }, (_, id) => ({ id, key: undefined, heapIndex: -1, heapKey: 0 }));
        const h = new DeadlineHeap<Item>();
        for (const [i, k] of ops) {
          items[i]!.key = k ?? undefined;
          h.set(items[i]!, k ?? undefined);
          const keys = items.map((x) => x.key).filter((x): x is number => x !== undefined);
          expect(h.size).toBe(keys.length);
          expect(h.peekKey()).toBe(keys.length === 0 ? undefined : Math.min(...keys));
        }
      }),
      { numRuns: 300 },
    );
  });

  test("a device with many peers: nextDeadline is the earliest timer of any peer, and tick runs only due peers' timers", () => {
    let t = 0;
    const dev = new Device({ now: () => t, wallNow: () => 1e12 + t, random: seededRandom("heap") });
    const keys = Array.from({ length: 50 }, (_, i) => seededRandom(`peer${i}`)(32));
    dev.applyConfig({
      privateKey: seededRandom("me")(32),
      replacePeers: false,
      peers: keys.map((k, i) =>
        peerUpdate(k, {
          endpoint: Endpoint.fromAddress(`10.1.0.${i + 1}`, 51820)!,
          persistentKeepaliveInterval: 1 + (i % 7),
          allowedIps: [{ address: `10.2.0.${i + 1}`, family: 4, bits: 32 }],
        }),
      ),
    });
    const live = new Set(keys);
    const earliest = (): number | undefined => {
      let m: number | undefined;
      for (const k of live) {
        const d = peerOf(dev, k).timers.next();
        if (d !== undefined && (m === undefined || d < m)) m = d;
      }
      return m;
    };
    for (let step = 0; step < 200; step++) {
      expect(dev.nextDeadline()).toBe(earliest());
      const next = dev.nextDeadline()!;
      t = next;
      dev.tick();
      dev.takeDatagrams();
      // Nothing due is left behind.
      expect(dev.nextDeadline()!).toBeGreaterThan(t);
      if (step % 17 === 0) {
        live.delete(keys[step % 50]!);
        dev.applyConfig({ replacePeers: false, peers: [{ ...peerUpdate(keys[step % 50]!), remove: true }] });
      }
    }
  });
});
