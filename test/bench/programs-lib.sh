# shellcheck shell=bash
# Shared by the benchmarks that run Lattice's programs (mesh, ssh, dns, routes): sets the
# arrays control, latticed and lattice to the files the packages' bin fields name (as
# `pnpm exec` runs them) and exits 1 when one is missing (not built). Needs $repo.

# bin_of PKG-DIR PROGRAM: the file PKG-DIR's package.json bin field names for PROGRAM.
bin_of() {
	node -e 'const [d, n] = process.argv.slice(1); let b; try { const p = require(d + "/package.json"); b = typeof p.bin === "string" ? p.bin : p.bin && p.bin[n]; } catch {} console.log(b ? require("path").join(d, b) : d + "/(no bin " + n + ")")' "$repo/$1" "$2"
}

control=(node "$(bin_of coordination lattice-control)")
latticed=(node "$(bin_of daemon latticed)")
lattice=(node "$(bin_of cli lattice)")
# The bin files are shims importing dist/: both must be there.
for f in "${control[1]}" "${latticed[1]}" "${lattice[1]}" "$repo/coordination/dist/main.js" "$repo/daemon/dist/latticed/entry.js" "$repo/cli/dist/main.js"; do
	[[ -f $f ]] || { echo "$f missing: not in this checkout or not built (pnpm exec tsc -b)" >&2; exit 1; }
done
