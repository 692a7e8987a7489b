"""What the Python benchmarks share: calling reeld's control API over its Unix socket, and starting a reeld on a
scratch folder. Imported by bench/intake/bench.py and bench/scheduler/bench.py (which put bench/ on sys.path)."""
import http.client, json, os, socket, subprocess, sys, time


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def call(sock, method, path):
    """One request on a fresh connection; the JSON answer (None when empty). Exits on a non-2xx answer."""
    c = UnixHTTP(sock)
    try:
        c.request(method, path)
        r = c.getresponse()
        body = r.read()
        if r.status >= 300:
            sys.exit(f"{method} {path}: HTTP {r.status} {body[:300]!r}")
        return json.loads(body) if body else None
    finally:
        c.close()


def start_reeld(binary_dir, work, base_url, extra_toml=""):
    """Creates the spool, output and state folders under `work`, writes reel.toml (sandbox provider at
    `base_url`, log level info, then `extra_toml`), starts reeld with its log in work/reeld.log and waits until
    its control socket answers. Returns (process, socket path, environment used)."""
    for d in ("spool/tmp", "spool/incoming", "output", "state"):
        os.makedirs(f"{work}/{d}")
    sock = f"{work}/reel.sock"
    with open(f"{work}/reel.toml", "w") as f:
        f.write(f'[paths]\nspool = "{work}/spool"\noutput = "{work}/output"\nstate = "{work}/state"\n'
                f'socket = "{sock}"\n[provider]\nkind = "sandbox"\nbase_url = "{base_url}"\n'
                f'[log]\nlevel = "info"\n{extra_toml}')
    env = dict(os.environ, DASHSCOPE_API_KEY="sk-bench")
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID"):
        env.pop(k, None)
    reeld = subprocess.Popen([f"{binary_dir}/reeld", "--config", f"{work}/reel.toml"],
                             stdout=open(f"{work}/reeld.log", "w"), stderr=subprocess.STDOUT, env=env)
    for _ in range(600):
        try:
            call(sock, "GET", "/v1/status")
            return reeld, sock, env
        except OSError:
            if reeld.poll() is not None:
                sys.exit(f"reeld exited: {open(f'{work}/reeld.log').read()[-3000:]}")
            time.sleep(0.05)
    sys.exit("reeld did not answer on its control socket within 30 s")
