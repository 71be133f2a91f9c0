"""What a person sees in a terminal: the progress bar and the log lines share stderr without
interleaving (run in a pseudo-terminal), and there is no bar under -q or off a terminal."""

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios

TRAIN = [sys.executable, "-m", "distlda", "train", "-k", "5", "-i", "40", "--eval-every", "5",
         "--distributed", "no", "--threads", "1"]
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) distlda[\w.]*: ")


def run_in_pty(argv, timeout=240):
    """Run ``argv`` with stdout and stderr on a 100x24 pseudo-terminal; return its bytes."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    out = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                raise TimeoutError(f"no output for {timeout} s: {out[-500:]!r}")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
    finally:
        os.close(master)
        proc.wait(timeout=60)
    return proc.returncode, out.decode("utf-8", "replace")


def render(text):
    """The screen lines a terminal shows for ``text``: carriage returns overwrite, escape
    sequences are dropped (none move the cursor across lines here)."""
    lines, line, col = [], [], 0
    for part in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", text):
        if part == "\r":
            col = 0
        elif part == "\n":
            lines.append("".join(line).rstrip())
            line, col = [], 0
        elif part.startswith("\x1b"):
            continue
        else:
            for ch in part:
                if col < len(line):
                    line[col] = ch
                else:
                    line.append(ch)
                col += 1
    if "".join(line).strip():
        lines.append("".join(line).rstrip())
    return lines


def test_bar_and_log_lines_do_not_interleave():
    rc, raw = run_in_pty(TRAIN)
    assert rc == 0, raw[-2000:]
    # the bar was drawn, with speed and the latest log-likelihood
    assert "Gibbs sweeps" in raw and "tok/s" in raw and "LL -" in raw
    screen = render(raw)
    logs = [line for line in screen if " INFO " in line or " WARNING " in line]
    sweeps = [line for line in logs if re.search(r"sweep \d+/40", line)]
    assert len(sweeps) == 8, screen
    for line in logs:  # each log line whole, on a line of its own, with no bar fragment in it
        assert LOG_LINE.match(line), line
        assert "Gibbs sweeps" not in line and "tok/s" not in line, line
    # leave=False: the finished bar is wiped, no fragment stays on screen
    assert not [line for line in screen if "Gibbs sweeps" in line or "sweep/s" in line], screen
    topics = [line for line in screen if line.startswith("topic ")]
    assert len(topics) == 5


def test_no_bar_under_quiet_or_off_a_terminal():
    rc, raw = run_in_pty(TRAIN + ["-q"])
    assert rc == 0, raw[-2000:]
    assert "Gibbs sweeps" not in raw and " INFO " not in raw
    assert len([line for line in render(raw) if line.startswith("topic ")]) == 5
    proc = subprocess.run(TRAIN, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "Gibbs sweeps" not in proc.stderr and "\r" not in proc.stderr
    assert "log-likelihood" in proc.stderr  # the log lines are still there
