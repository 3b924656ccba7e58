"""
Watches a directory with inotify (through ctypes) for new files whose
names start with one of the given prefixes (a secret file, its previous
files and their temp files ".NAME.XXXX") and checks every one of them
while it lives: as soon as a file is created or renamed into the
directory it is opened, and from then on fstat()ed in a tight loop until
its last link is gone. An observation of a file that holds bytes
(st_size > 0) with another mode, owner or group than expected is a
violation.

  python3 inode_watch.py DIR MODE UID GID PREFIX...

MODE is octal. Prints "ready" on stdout once the watch is in place; on
SIGTERM prints one JSON report and exits:

  {"files": [{"ino": n, "names": [...], "first_size": n,
              "nonempty_seen": n, "observations": n}, ...],
   "violations": [{"name", "ino", "mode", "uid", "gid", "size"}],
   "events": n, "overflow": bool}

A file is one inode from its creation to its last unlink: the watch holds
it open meanwhile, so its number is not reused before it is done.
"""
import ctypes
import ctypes.util
import errno
import json
import os
import signal
import stat
import struct
import sys

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_Q_OVERFLOW = 0x4000

EVENT = struct.Struct("iIII")


def main():
    top, mode, uid, gid = sys.argv[1], int(sys.argv[2], 8), \
        int(sys.argv[3]), int(sys.argv[4])
    prefixes = tuple(sys.argv[5:])
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                       use_errno=True)
    ifd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if ifd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    wd = libc.inotify_add_watch(ifd, top.encode(),
                                IN_CREATE | IN_MOVED_TO | IN_MODIFY |
                                IN_ATTRIB | IN_CLOSE_WRITE)
    if wd < 0:
        raise OSError(ctypes.get_errno(), "inotify_add_watch")

    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    inodes = {}         # ino -> record, while the file lives
    done = []           # the records of files that are gone
    open_fds = {}       # fd -> (ino, the name it was opened by)
    violations = []
    nevents = 0
    overflow = False

    def look(fd, name):
        st = os.fstat(fd)
        rec = inodes[st.st_ino]
        rec["observations"] += 1
        if st.st_size > 0:
            rec["nonempty_seen"] += 1
            if (stat.S_IMODE(st.st_mode) != mode or st.st_uid != uid or
                    st.st_gid != gid) and len(violations) < 100:
                violations.append({
                    "name": name, "ino": st.st_ino,
                    "mode": oct(stat.S_IMODE(st.st_mode)),
                    "uid": st.st_uid, "gid": st.st_gid,
                    "size": st.st_size})
        return st

    def track(name):
        try:
            fd = os.open(os.path.join(top, name),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK |
                         os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ELOOP):
                return      # gone already (a temp file renamed away)
            raise
        st = os.fstat(fd)
        rec = inodes.get(st.st_ino)
        if rec is None:
            rec = inodes[st.st_ino] = {
                "ino": st.st_ino, "names": [], "first_size": st.st_size,
                "nonempty_seen": 0, "observations": 0}
        if name not in rec["names"]:
            rec["names"].append(name)
        same = [f for f, (i, _) in open_fds.items() if i == st.st_ino]
        if same:
            os.close(fd)
            fd = same[0]
        else:
            open_fds[fd] = (st.st_ino, name)
        look(fd, name)

    print("ready", flush=True)
    buf = b""
    while not stop:
        try:
            buf += os.read(ifd, 65536)
        except BlockingIOError:
            pass
        while len(buf) >= EVENT.size:
            _, mask, _, n = EVENT.unpack_from(buf)
            if len(buf) < EVENT.size + n:
                break
            name = buf[EVENT.size:EVENT.size + n].rstrip(b"\0").decode()
            buf = buf[EVENT.size + n:]
            nevents += 1
            if mask & IN_Q_OVERFLOW:
                overflow = True
            if name.startswith(prefixes) or \
                    name.startswith(tuple("." + p for p in prefixes)):
                if mask & (IN_CREATE | IN_MOVED_TO):
                    track(name)
        for fd, (ino, name) in list(open_fds.items()):
            st = look(fd, name)
            if st.st_nlink == 0:
                os.close(fd)
                del open_fds[fd]
                done.append(inodes.pop(ino))
    for fd in open_fds:
        os.close(fd)
    print(json.dumps({"files": done + list(inodes.values()),
                      "violations": violations, "events": nevents,
                      "overflow": overflow}), flush=True)


if __name__ == "__main__":
    main()
