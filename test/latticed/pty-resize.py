"""Drives `ssh -tt` from a real local terminal and resizes it mid-session.

Usage: pty-resize.py ssh -tt ... HOST 'echo SIZE1=$(stty size)=; read x; echo SIZE2=$(stty size)='

ssh reads the window size from its own terminal (TIOCGWINSZ on stdin) when it starts and
again on SIGWINCH, and sends it as pty-req / window-change; that needs a real pty, so this
opens one at 24x80, runs ssh on it, waits for the remote `stty size`, resizes the pty to
40x132, sends ssh SIGWINCH (as a terminal emulator's resize does) and presses Enter. (A
command, not a login shell: root's profile on a test machine may do anything, e.g. block.)
Prints the two sizes the remote shell saw, e.g. "24 80|40 132"; exits 1 on a timeout.
"""
import fcntl, os, re, select, signal, struct, sys, termios, time


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


master, slave = os.openpty()
set_size(slave, 24, 80)
pid = os.fork()
if pid == 0:
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(master)
    os.execvp(sys.argv[1], sys.argv[1:])
os.close(slave)
buf = b""


def wait_for(pattern, seconds):
    global buf
    end = time.time() + seconds
    while time.time() < end:
        m = re.search(pattern, buf)
        if m:
            buf = buf[m.end():]
            return m
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                buf += os.read(master, 65536)
            except OSError:
                break
    sys.stderr.write("timeout waiting for %r; output: %r\n" % (pattern, buf[-500:]))
    os.kill(pid, signal.SIGKILL)
    sys.exit(1)


# The remote command (see the usage) prints its size, waits for a line, prints it again.
first = wait_for(rb"SIZE1=(\d+ \d+)=", 30).group(1).decode()
set_size(master, 40, 132)
os.kill(pid, signal.SIGWINCH)
time.sleep(0.5)
os.write(master, b"\n")
second = wait_for(rb"SIZE2=(\d+ \d+)=", 20).group(1).decode()
_, status = os.waitpid(pid, 0)
print("%s|%s|%d" % (first, second, os.waitstatus_to_exitcode(status)))
