"""Run a program under the syscall rules a systemd unit gives its service, without systemd.

    python tests/seccomp_run.py SPEC.json -- PROGRAM ARG...

SPEC holds the unit's rules already expanded: ``allow`` (syscall names, from SystemCallFilter=),
``errno`` (SystemCallErrorNumber=), ``namespaces`` (RestrictNamespaces=: the kinds kept, or
null for no restriction) and ``families`` (RestrictAddressFamilies=: numbers, or null). The
filter is built with libseccomp (through ctypes; the Python binding is not packaged here) the
way systemd builds it: calls not allowed fail with the errno; clone and unshare fail when they
ask for a namespace that is not kept, setns for any kind not kept, and clone3 (whose flags a
filter cannot see) answers ENOSYS so that the C library falls back to clone; socket works only
for the listed families. Then it execs the program, with no_new_privs set as NoNewPrivileges=
does. Used by tests/test_launcher_unit_sandbox.py to show Chromium's own sandbox survives the
launcher unit.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys

ALLOW = 0x7FFF0000
CMP_EQ, CMP_MASKED_EQ = 4, 7
NAMESPACE_FLAGS = {
    "cgroup": 0x02000000,
    "ipc": 0x08000000,
    "mnt": 0x00020000,
    "net": 0x40000000,
    "pid": 0x20000000,
    "user": 0x10000000,
    "uts": 0x04000000,
}


def errno_action(number: int) -> int:
    return 0x00050000 | (number & 0xFFFF)


class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def main(spec_path: str, argv: list[str]) -> None:
    spec = json.loads(open(spec_path, encoding="utf-8").read())
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = ctypes.c_void_p(lib.seccomp_init(errno_action(getattr(errno, spec.get("errno", "EPERM")))))

    def rule(action: int, name: str, *cmps: Cmp) -> None:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            return  # not a call on this architecture
        array = (Cmp * len(cmps))(*cmps) if cmps else None
        if lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), array) != 0:
            raise SystemExit(f"seccomp_rule_add {name} failed")

    allowed = set(spec["allow"])
    kept = spec.get("namespaces")
    families = spec.get("families")
    special = set()
    if kept is not None:
        special |= {"clone", "clone3", "unshare", "setns"}
    if families is not None:
        special.add("socket")
    for name in sorted(allowed - special):
        rule(ALLOW, name)
    if kept is not None:
        denied = 0
        for kind, flag in NAMESPACE_FLAGS.items():
            if kind not in kept:
                denied |= flag
        rule(errno_action(errno.ENOSYS), "clone3")
        for name in ("clone", "unshare"):
            if name in allowed:
                rule(ALLOW, name, Cmp(0, CMP_MASKED_EQ, denied, 0))
        if "setns" in allowed:
            for kind in kept:
                rule(ALLOW, "setns", Cmp(1, CMP_EQ, NAMESPACE_FLAGS[kind], 0))
    if families is not None and "socket" in allowed:
        for family in families:
            rule(ALLOW, "socket", Cmp(0, CMP_EQ, family, 0))
    if lib.seccomp_load(ctx) != 0:
        raise SystemExit(f"seccomp_load failed: {os.strerror(ctypes.get_errno())}")
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    if "--" not in sys.argv:
        raise SystemExit(__doc__)
    cut = sys.argv.index("--")
    main(sys.argv[1], sys.argv[cut + 1 :])
