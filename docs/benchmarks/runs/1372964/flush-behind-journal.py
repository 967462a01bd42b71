"""fdatasync latency of small appends (a journal) while another thread writes a large file
(a memtable flush) in one go or in chunks synced as they go (RocksDB's bytes_per_sync)."""
import os, sys, threading, time, statistics

DIR = sys.argv[1]
MODE = sys.argv[2]          # none | whole | chunked
BIG = 16 * 1024 * 1024
CHUNK = int(sys.argv[3]) if len(sys.argv) > 3 else 1024 * 1024
ROUNDS = 4

def journal(stop, lat):
    fd = os.open(os.path.join(DIR, "journal"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    buf = b"x" * 3000
    while not stop.is_set():
        os.write(fd, buf)
        t = time.perf_counter()
        os.fdatasync(fd)
        lat.append((time.perf_counter() - t) * 1000)
        time.sleep(0.0005)  # ~2,000 commits/s at most
    os.close(fd)

def flusher(i):
    path = os.path.join(DIR, f"blob{i}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    data = os.urandom(CHUNK)
    written = 0
    while written < BIG:
        os.write(fd, data)
        written += CHUNK
        if MODE == "chunked":
            os.fdatasync(fd)
    os.fsync(fd)
    os.close(fd)
    os.unlink(path)

stop = threading.Event()
lat = []
t = threading.Thread(target=journal, args=(stop, lat))
t.start()
time.sleep(1.0)
windows = []
for i in range(ROUNDS):
    start = len(lat)
    t0 = time.perf_counter()
    if MODE != "none":
        flusher(i)
    else:
        time.sleep(0.1)
    dur = (time.perf_counter() - t0) * 1000
    time.sleep(0.3)
    windows.append((dur, lat[start:]))
stop.set(); t.join()
allw = [x for _, w in windows for x in w]
allw.sort()
q = lambda p: allw[min(len(allw) - 1, int(p * len(allw)))]
print(f"{MODE:8s} chunk={CHUNK>>10}KiB flush ms={[round(d) for d,_ in windows]} journal syncs={len(allw)} "
      f"p50={q(0.5):.2f} p99={q(0.99):.2f} max={allw[-1]:.2f} over5ms={sum(1 for x in allw if x>5)}")
