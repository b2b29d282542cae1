"""paramiko and asyncssh (Debian's python3-paramiko / python3-asyncssh) each run a command
on HOST as USER, once offering only a password and once only a key (neither tries `none`).

Usage: /usr/bin/python3 py-clients.py HOST USER KEYFILE   (prints one line per run)
"""
import asyncio, sys, warnings

# Debian's asyncssh imports ciphers newer cryptography deprecates (noise, not Lattice's).
warnings.filterwarnings("ignore", message=".*has been deprecated")
import asyncssh
import paramiko

host, user, key = sys.argv[1:4]


def run_paramiko(**auth):
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect(host, username=user, look_for_keys=False, allow_agent=False, timeout=20, **auth)
    _, out, _ = c.exec_command("id -un; exit 3")
    text = out.read().decode().strip()
    code = out.channel.recv_exit_status()
    c.close()
    return "%s rc=%d" % (text, code)


async def run_asyncssh(**auth):
    async with asyncssh.connect(host, username=user, known_hosts=None, agent_path=None, **auth) as c:
        r = await c.run("id -un; exit 3")
        return "%s rc=%d" % (r.stdout.strip(), r.exit_status)


print("paramiko password:", run_paramiko(password="ignored-by-lattice"))
print("paramiko key:", run_paramiko(key_filename=key))
print("asyncssh password:", asyncio.run(run_asyncssh(password="ignored-by-lattice", client_keys=None)))
print("asyncssh key:", asyncio.run(run_asyncssh(client_keys=[key], password=None)))
