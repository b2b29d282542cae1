// Cost of the MagicDNS resolver core per query (decode, decide, encode) on a 1000-node
// zone: tailnet A, PTR, NXDOMAIN and the forward decision. Figures, not assertions:
// `pnpm exec vitest run --project bench packages/dns/bench/resolver.test.ts`.
import dnsPacket from "dns-packet";
import { test } from "vitest";
import { Resolver, Zone } from "../src/index.js";

test("MagicDNS resolver: queries/s and p99 per answer kind", () => {
  const hosts = Array.from({ length: 1000 }, (_, i) => ({ name: `node${i}.tail.example.`, addresses: [`100.64.${i >> 8}.${i & 255}/32`, `fd7a:115c:a1e0::${i.toString(16)}/128`] }));
  const r = new Resolver(Zone.build({ domain: "tail.example", hosts }));
  const q = (name: string, type: "A" | "PTR") =>
    dnsPacket.encode({ type: "query", id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }], additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232 } as never] });
  const kinds: Array<[string, Uint8Array]> = [
    ["A short name", q("node500", "A")],
    ["A FQDN", q("node999.tail.example", "A")],
    ["PTR", q("244.1.64.100.in-addr.arpa", "PTR")],
    ["NXDOMAIN", q("nosuch.tail.example", "A")],
    ["forward decision", q("www.example.com", "A")],
  ];
  const rows: string[] = [];
  for (const [label, msg] of kinds) {
    for (let i = 0; i < 5000; i++) r.handle(msg); // warm-up
    const n = 50_000;
    const lat = new Float64Array(n);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const s = process.hrtime.bigint();
      r.handle(msg);
      lat[i] = Number(process.hrtime.bigint() - s);
    }
    const total = Number(process.hrtime.bigint() - t0);
    lat.sort();
    rows.push(`${label.padEnd(18)} ${Math.round(n / (total / 1e9)).toString().padStart(8)} q/s   p50 ${(lat[n >> 1]! / 1000).toFixed(1)} µs   p99 ${(lat[Math.floor(n * 0.99)]! / 1000).toFixed(1)} µs`);
  }
  console.log(`MagicDNS resolver core (1000 nodes, one core, Node ${process.version}):\n${rows.join("\n")}`);
});
