// Opens N TCP connections to HOST:PORT and never sends a byte (an SSH client that never
// sends its banner), holding them until stdin closes. Prints "open <established>" once all
// attempts settled (or after 20 s), then "end <still open>" at exit.
// Usage: node half-open.mjs HOST PORT N
import net from "node:net";

const [host, port, n] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
let settled = 0;
let open = 0;
const socks = [];
const report = () => console.log(`open ${open}`);
const timer = setTimeout(report, 20_000);
for (let i = 0; i < n; i++) {
  const s = net.connect({ host, port });
  socks.push(s);
  let done = false;
  const settle = () => {
    if (done) return;
    done = true;
    if (++settled === n) {
      clearTimeout(timer);
      report();
    }
  };
  s.on("connect", () => {
    open++;
    settle();
  });
  s.on("error", settle);
  s.on("close", () => {
    if (s.connecting) return;
    settle();
  });
  s.setTimeout(0);
}
process.stdin.resume();
process.stdin.on("end", () => {
  console.log(`end ${socks.filter((s) => !s.destroyed && s.readyState === "open").length}`);
  process.exit(0);
});
