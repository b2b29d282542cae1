// Setup of the system project: before each test, removes a stale pyenv rehash lock.
//
// Machines like CI's have pyenv in root's ~/.bashrc, so every root login shell an SSH
// session starts runs `pyenv rehash`, which takes a lock file (`$PYENV_ROOT/shims/.pyenv-shim`,
// created with noclobber). Tests that revoke or kill sessions can kill a shell in the middle
// of that, leaving the lock behind; every later root session then waits 60 s for it
// ("pyenv: cannot rehash: couldn't acquire lock") and the SSH tests time out. The lock is
// only removed when it is older than any rehash takes (10 s), so a live one is left alone.
import { rmSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { beforeEach } from "vitest";

const lock = join(process.env["PYENV_ROOT"] ?? join(homedir(), ".pyenv"), "shims", ".pyenv-shim");

beforeEach(() => {
  try {
    if (Date.now() - statSync(lock).mtimeMs > 10_000) rmSync(lock, { force: true });
  } catch {
    // no pyenv, or no lock: nothing to do
  }
});
