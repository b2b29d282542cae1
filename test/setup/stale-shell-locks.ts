// Setup of the system project: removes a stale pyenv rehash lock before each test and,
// while tests run, once a second.
//
// Machines like CI's have pyenv in root's ~/.bashrc, so every root login shell an SSH
// session starts runs `pyenv rehash`, which takes a lock file (`$PYENV_ROOT/shims/.pyenv-shim`,
// created with noclobber). Tests that revoke or kill sessions can kill a shell in the middle
// of that, leaving the lock behind; every later root session then waits 60 s for it
// ("pyenv: cannot rehash: couldn't acquire lock") and the SSH tests time out. Test files run
// in parallel, so a lock can be left behind by another file in the middle of a test: hence
// the periodic check, not only the one before each test (a CI run lost a session that way).
// The lock is only removed when it is older than any rehash takes (10 s), so a live one is
// left alone.
import { rmSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach } from "vitest";

const lock = join(process.env["PYENV_ROOT"] ?? join(homedir(), ".pyenv"), "shims", ".pyenv-shim");
const STALE_MS = 10_000;

function removeStaleLock(): void {
  try {
    if (Date.now() - statSync(lock).mtimeMs > STALE_MS) rmSync(lock, { force: true });
  } catch {
    // no pyenv, or no lock: nothing to do
  }
}

let timer: NodeJS.Timeout | undefined;

beforeAll(() => {
  timer = setInterval(removeStaleLock, 1_000);
  timer.unref();
});

afterAll(() => {
  clearInterval(timer);
});

beforeEach(removeStaleLock);
