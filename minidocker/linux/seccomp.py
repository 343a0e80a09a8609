"""Seccomp: a filter on the system calls themselves, the last wall before the kernel.

Namespaces hide things and capabilities take powers away, but every system call still
reaches the kernel's code, and a bug there is a way out of the container. seccomp-bpf
("secure computing" with Berkeley Packet Filter programs) lets a process attach a tiny
program to itself that the kernel runs on *every* system call, before the call does
anything: it sees the architecture, the syscall number and the six argument registers
(never the memory they point to) and answers allow, fail with errno N, kill, trap (SIGSYS)
or log. Filters are inherited by children and survive execve, and can never be removed.

We read the rules from a profile in Docker's JSON format (``seccomp_default.json`` beside
this module is ours, written after Docker's default): a default action plus a list of
``{names, action, errnoRet, args, includes, excludes}`` rules. ``compile_filter`` keeps
the rules that apply to this container (``includes.caps``: only if the container has all
those capabilities; ``excludes.caps``: only if it has none of them; ``includes.arches`` /
``excludes.arches``: this machine's architecture; ``includes.minKernel`` /
``excludes.minKernel``: the running kernel's version) and has libseccomp (through the
``pyseccomp`` ctypes bindings) compile them into BPF for this architecture and its 32-bit
companions (x86 and x32 on x86_64). The program is cached under the store's root
(``filter_for``), and the container's init loads it with one prctl(PR_SET_SECCOMP) call
(``load_filter``), right before execve.

Like all of linux/, this module raises no error of minidocker's: ``ValueError`` for a
profile that is not usable (the message names the file and what is wrong), ``OSError`` for
a file it cannot read (with its path) or a rule libseccomp refuses, ``ImportError`` when
pyseccomp or libseccomp is missing (``name`` says which). ``runtime/lifecycle.py`` turns
them into the one line the user reads.

Why no_new_privs first: a filter can make a setuid-root program misbehave (fail its
setuid() call and carry on as root), so the kernel lets an unprivileged process install one
only once it has promised, with ``prctl(PR_SET_NO_NEW_PRIVS, 1)``, that execve will never
grant it more privileges (setuid bits and file capabilities are then ignored). Without it,
seccomp(2) needs CAP_SYS_ADMIN. The container's init sets it, then calls us right before
execve; ``load_filter`` sets it again, which does no harm when it is set.

See it: ``minidocker run --rm busybox grep Seccomp /proc/self/status`` shows ``Seccomp: 2``
(0 = off, 1 = strict mode, 2 = filter), and ``minidocker run --rm busybox unshare -U sh``
fails with "Operation not permitted" where the host's ``unshare -U sh`` works.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections import namedtuple
from pathlib import Path

from minidocker.linux.events import emit

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PROFILE = Path(__file__).with_name("seccomp_default.json")

ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG",
    "SCMP_ACT_ALLOW",
)
OPERATORS = (
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)

# libseccomp's name of this machine's architecture -> the names a profile may use for it in
# ``includes.arches`` (Docker writes Go's GOARCH names there: amd64, arm64, ...).
_ARCH_ALIASES = {
    "X86_64": ("amd64", "x86_64"),
    "X86": ("386", "x86", "i386"),
    "X32": ("x32",),
    "AARCH64": ("arm64", "aarch64"),
    "ARM": ("arm",),
    "PPC64LE": ("ppc64le",),
    "PPC64": ("ppc64",),
    "S390X": ("s390x",),
    "S390": ("s390",),
    "RISCV64": ("riscv64",),
    "MIPS64": ("mips64",),
    "MIPSEL64": ("mips64le", "mipsel64"),
    "MIPS": ("mips",),
    "MIPSEL": ("mipsle", "mipsel"),
}


class Rule(namedtuple("Rule", "name action errno_ret args")):
    """One rule that applies to this container: syscall ``name``, ``action``, ``errno_ret``
    (an int or None) and ``args`` (a tuple of docker's argument conditions)."""

    __slots__ = ()


def load_profile(path: str | None) -> dict:
    """Read and check a profile in Docker's format; ``None`` means our default profile.
    Raises OSError (with the path) if it cannot be read, ValueError if it is not usable."""
    where = str(path) if path is not None else str(DEFAULT_PROFILE)
    text = Path(where).read_text()
    try:
        profile = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"seccomp profile {where}: not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    problem = check_profile(profile)
    if problem:
        raise ValueError(f"seccomp profile {where}: {problem}")
    return profile


def check_profile(profile: Any) -> str | None:
    """The first thing wrong with a profile, in a few words, or ``None`` when it is usable."""
    if not isinstance(profile, dict):
        return "the top level must be a JSON object"
    if profile.get("defaultAction") not in ACTIONS:
        return f"defaultAction must be one of {', '.join(ACTIONS)}, not {profile.get('defaultAction')!r}"
    if not _is_errno(profile.get("defaultErrnoRet", 1)):
        return "defaultErrnoRet must be an errno number (1-4095)"
    if not _str_list(profile.get("architectures", [])):
        return "architectures must be a list of names"
    arch_map = profile.get("archMap") or []
    if not isinstance(arch_map, list) or not all(
        isinstance(a, dict) and isinstance(a.get("architecture"), str) and _str_list(a.get("subArchitectures") or [])
        for a in arch_map
    ):
        return "archMap must be a list of {architecture, subArchitectures}"
    syscalls = profile.get("syscalls", [])
    if not isinstance(syscalls, list):
        return "syscalls must be a list"
    for i, rule in enumerate(syscalls):
        problem = _check_rule(rule)
        if problem:
            return f"syscalls[{i}]: {problem}"
    return None


def _check_rule(rule: Any) -> str | None:
    if not isinstance(rule, dict):
        return "must be an object"
    names = rule.get("names", [rule["name"]] if isinstance(rule.get("name"), str) else None)
    if not names or not _str_list(names) or not all(names):
        return "names must be a non-empty list of syscall names"
    if rule.get("action") not in ACTIONS:
        return f"unknown action {rule.get('action')!r}"
    if "errnoRet" in rule and not _is_errno(rule["errnoRet"]):
        return "errnoRet must be an errno number (1-4095)"
    args = rule.get("args") or []
    if not isinstance(args, list) or len(args) > 6:
        return "args must be a list of at most 6 comparisons"
    for j, arg in enumerate(args):
        if not isinstance(arg, dict):
            return f"args[{j}] must be an object"
        if not _is_int(arg.get("index")) or not 0 <= arg["index"] <= 5:
            return f"args[{j}].index must be 0-5"
        for key in ("value", "valueTwo"):
            if not _is_int(arg.get(key, 0)) or not 0 <= arg.get(key, 0) < 2**64:
                return f"args[{j}].{key} must be an unsigned 64-bit number"
        if arg.get("op") not in OPERATORS:
            return f"args[{j}].op: unknown operator {arg.get('op')!r}"
    for key in ("includes", "excludes"):
        cond = rule.get(key) or {}
        if not isinstance(cond, dict):
            return f"{key} must be an object"
        if not _str_list(cond.get("caps") or []) or not _str_list(cond.get("arches") or []):
            return f"{key}.caps and {key}.arches must be lists of names"
        if "minKernel" in cond and not (
            isinstance(cond["minKernel"], str) and re.fullmatch(r"\d+\.\d+", cond["minKernel"])
        ):
            return f'{key}.minKernel must look like "4.8"'
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_errno(v: Any) -> bool:
    return _is_int(v) and 0 < v < 4096


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def kernel_version() -> tuple[int, int]:
    """The running kernel's (major, minor), from uname -r ("6.18.0-1-amd64" -> (6, 18))."""
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _arch_matches(names: list[str], native: str) -> bool:
    wanted = {n.lower().removeprefix("scmp_arch_") for n in names}
    return bool(wanted & {native.lower(), *_ARCH_ALIASES.get(native, ())})


def _applies(cond: dict, capabilities: set[str], native: str, kernel: tuple[int, int], include: bool) -> bool:
    """Whether an ``includes`` (include=True) or ``excludes`` condition lets a rule apply."""
    caps, arches, min_kernel = cond.get("caps") or [], cond.get("arches") or [], cond.get("minKernel")
    at_least = min_kernel is not None and kernel >= tuple(int(x) for x in min_kernel.split("."))
    if include:  # every condition given must hold
        return (
            all(c in capabilities for c in caps)
            and (not arches or _arch_matches(arches, native))
            and (min_kernel is None or at_least)
        )
    # excludes: any condition that holds removes the rule
    return not (any(c in capabilities for c in caps) or (arches and _arch_matches(arches, native)) or at_least)


def rules_for(
    profile: dict, capabilities: set[str], native_arch: str | None = None, kernel: tuple[int, int] | None = None
) -> list[Rule]:
    """The rules of ``profile`` that apply to a container with these capabilities, one per syscall name.

    Pure Python (no libseccomp), so tests can ask "is mount allowed with Docker's default caps?".
    ``native_arch`` is libseccomp's name for the machine ("X86_64", "AARCH64"); by default this one.
    """
    native = native_arch or _native_arch_name()
    kernel = kernel or kernel_version()
    out = []
    for rule in profile.get("syscalls", []):
        if not _applies(rule.get("includes") or {}, capabilities, native, kernel, True):
            continue
        if not _applies(rule.get("excludes") or {}, capabilities, native, kernel, False):
            continue
        names = rule.get("names") or [rule["name"]]
        for name in names:
            out.append(Rule(name, rule["action"], rule.get("errnoRet"), tuple(rule.get("args") or ())))
    return out


def _native_arch_name() -> str:
    """libseccomp's name for this machine, derived from uname -m without loading libseccomp."""
    machine = os.uname().machine
    return {
        "x86_64": "X86_64",
        "aarch64": "AARCH64",
        "i686": "X86",
        "i386": "X86",
        "ppc64le": "PPC64LE",
        "s390x": "S390X",
        "riscv64": "RISCV64",
    }.get(machine, machine.upper())


def _pyseccomp():
    """Import pyseccomp (which loads libseccomp.so.2), or raise ImportError saying what to
    install: ``name`` is the package, "pyseccomp" or "libseccomp2"."""
    import ctypes.util

    # pyseccomp asks ctypes.util.find_library for libc and libseccomp, which runs
    # `ldconfig -p` twice (~20 ms on every container start). The sonames are stable ABI
    # names, so answer directly; an unknown name still takes the slow search.
    sonames = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}
    search = ctypes.util.find_library
    ctypes.util.find_library = lambda name: sonames.get(name) or search(name)
    try:
        import pyseccomp
    except ImportError as e:  # no pyseccomp
        raise ImportError("seccomp needs the pyseccomp package", name="pyseccomp") from e
    except (OSError, TypeError, AttributeError) as e:  # pyseccomp found no usable libseccomp
        raise ImportError(f"seccomp needs libseccomp 2.5+: {e}", name="libseccomp2") from e
    finally:
        ctypes.util.find_library = search
    return pyseccomp


def preload() -> None:
    """Load pyseccomp and libseccomp now, while the host's files are still visible (before pivot_root)."""
    _pyseccomp()


def _action(sc, name: str, errno_ret: int | None) -> int:
    if name == "SCMP_ACT_ERRNO":
        return sc.ERRNO(errno_ret if errno_ret is not None else errno.EPERM)
    if name == "SCMP_ACT_TRACE":
        return sc.TRACE(errno_ret if errno_ret is not None else errno.EPERM)
    return {
        "SCMP_ACT_KILL": sc.KILL,
        "SCMP_ACT_KILL_THREAD": sc.KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": sc.KILL_PROCESS,
        "SCMP_ACT_TRAP": sc.TRAP,
        "SCMP_ACT_LOG": sc.LOG,
        "SCMP_ACT_ALLOW": sc.ALLOW,
    }[name]


def _arches(profile: dict, native: str) -> list[str]:
    """The extra architectures to filter for: the archMap entry of this machine, plus ``architectures``."""
    names = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry["architecture"].removeprefix("SCMP_ARCH_") == native:
            names += [entry["architecture"], *(entry.get("subArchitectures") or [])]
    return [n.removeprefix("SCMP_ARCH_") for n in dict.fromkeys(names)]


def _comparisons(sc, args: tuple[dict[str, Any], ...]) -> list[list]:
    """Argument comparisons, grouped into libseccomp rules.

    Comparisons in one Docker rule must all hold (AND), and one libseccomp rule can test each
    argument only once; so, as runc does, several comparisons of the *same* argument become
    separate rules (OR).
    """

    def arg(a):
        return sc.Arg(
            a["index"], getattr(sc, a["op"].removeprefix("SCMP_CMP_")), a.get("value", 0), a.get("valueTwo", 0)
        )

    indexes = [a["index"] for a in args]
    if len(args) > 1 and len(set(indexes)) == 1:
        return [[arg(a)] for a in args]
    return [[arg(a) for a in args]]


class CompiledFilter(namedtuple("CompiledFilter", "program rules default_action")):
    """A profile compiled for one container: the BPF ``program`` (struct sock_filter[],
    bytes: what prctl(PR_SET_SECCOMP) takes), and what the timeline tells: the number of
    ``rules`` and the ``default_action``."""

    __slots__ = ()


def compile_filter(profile: dict, capabilities: set[str]) -> CompiledFilter:
    """Compile ``profile`` for a container with ``capabilities`` into a BPF program.

    libseccomp does the compiling (its tables know every architecture's syscall numbers);
    we export the program instead of letting libseccomp load it, so that it can be cached
    and loaded later with one prctl (``load_filter``). Syscall names this architecture does
    not know are skipped, as Docker does.
    """
    problem = check_profile(profile)
    if problem:
        raise ValueError(f"seccomp profile: {problem}")
    sc = _pyseccomp()
    native = next((n for n in _ARCH_ALIASES if getattr(sc.Arch, n, None) == sc.system_arch()), _native_arch_name())
    default = _action(sc, profile["defaultAction"], profile.get("defaultErrnoRet"))
    filt = sc.SyscallFilter(default)
    for name in _arches(profile, native):
        arch = getattr(sc.Arch, name, None)
        if arch is None or name == native:
            continue
        try:
            filt.add_arch(arch)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise OSError(e.errno, f"cannot add architecture {name}: {e.strerror}") from None
    count = 0
    for rule in rules_for(profile, capabilities, native):
        action = _action(sc, rule.action, rule.errno_ret)
        if action == default:
            continue  # libseccomp refuses rules that repeat the default action
        number = sc.resolve_syscall(sc.Arch.NATIVE, rule.name)
        if number == -1:  # __NR_SCMP_ERROR: no such syscall in libseccomp's tables
            continue
        for comparisons in _comparisons(sc, rule.args) if rule.args else [[]]:
            try:
                filt.add_rule(action, number, *comparisons)
            except OSError as e:
                raise OSError(e.errno, f"cannot add the rule for {rule.name}: {e.strerror}") from None
            count += 1
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "wb") as w:
            filt.export_bpf(w)  # a few KB: fits in the pipe's 64 KiB buffer
        with os.fdopen(read_end, "rb") as r:
            read_end = -1
            program = r.read()
    finally:
        if read_end != -1:
            os.close(read_end)
    return CompiledFilter(program, count, profile["defaultAction"])


def load_filter(compiled: CompiledFilter, no_new_privs: bool = True) -> None:
    """Attach the program to this process for good (needs no_new_privs, see above, unless
    the caller holds CAP_SYS_ADMIN: an OCI bundle may ask for the filter without it)."""
    from minidocker.linux import syscalls

    if no_new_privs:
        _set_no_new_privs()
    syscalls.set_seccomp_filter(compiled.program)
    emit(
        "seccomp",
        rules=compiled.rules,
        default_action=compiled.default_action,
        instructions=len(compiled.program) // syscalls.BPF_INSTRUCTION_SIZE,
    )


def _set_no_new_privs() -> None:
    import ctypes

    PR_SET_NO_NEW_PRIVS = 38
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def install_filter(profile: dict, capabilities: set[str]) -> int:
    """Compile and load in one go; returns how many syscall rules the filter holds."""
    compiled = compile_filter(profile, capabilities)
    load_filter(compiled)
    return compiled.rules


# -- the compiled-filter cache ------------------------------------------------------------
# Compiling Docker's profile takes libseccomp about 15 ms, and importing the bindings a few
# more, on every container start; yet the result depends only on the profile, the
# container's capabilities, the architecture and the kernel version. So the first start
# compiles and keeps the program under <root>/cache/seccomp/<key>.bpf; later starts read
# a few KB and load them. ``bpf_dbg``-style tools, or ``seccomp-tools disasm``, can read it.
CACHE_FORMAT = 2


def _cache_identity(capabilities: set[str]) -> dict:
    """Besides the profile's text, what the compiled program depends on."""
    return {
        "format": CACHE_FORMAT,
        "machine": os.uname().machine,
        "kernel": os.uname().release,
        "caps": sorted(capabilities),
    }


def cache_key(profile_text: bytes, capabilities: set[str]) -> str:
    """A file name for the entry. zlib's CRC is cheap (hashlib would load OpenSSL, ~2 ms on
    every start) and need not be collision-proof: the entry holds the whole profile text
    and the identity, and a hit is only taken when both are equal to ours."""
    import zlib

    ident = json.dumps(_cache_identity(capabilities), sort_keys=True).encode()
    return f"{zlib.crc32(profile_text):08x}{zlib.crc32(ident):08x}{len(profile_text):x}"


def filter_for(profile_path: str | None, capabilities: set[str], cache_dir: Path | None) -> CompiledFilter:
    """The compiled filter for a container: from the cache when it is there, else compiled
    (and cached). ``profile_path`` None is our default profile. A profile that cannot be
    read raises OSError with its path; a bad one ValueError with the file's name.

    A cache entry is one JSON line (the identity, the rule count, the lengths) followed by
    the profile's text and the BPF program."""
    where = str(profile_path) if profile_path is not None else str(DEFAULT_PROFILE)
    text = Path(where).read_bytes()
    cached = cache_dir / f"{cache_key(text, capabilities)}.bpf" if cache_dir else None
    if cached is not None:
        try:
            header, _, rest = cached.read_bytes().partition(b"\n")
            meta = json.loads(header)
            n = meta["profile_bytes"]
            program = rest[n:]
            if (
                meta["identity"] == _cache_identity(capabilities)
                and rest[:n] == text
                and program
                and len(program) == meta["program_bytes"]
            ):
                return CompiledFilter(program, meta["rules"], meta["default_action"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing or unreadable: compile again
    compiled = compile_filter(load_profile(profile_path), capabilities)
    if cached is not None:
        _store(cached, text, compiled, _cache_identity(capabilities))
    return compiled


def _store(path: Path, profile_text: bytes, compiled: CompiledFilter, identity: dict) -> None:
    """Write the cache entry atomically (temp file, fsync, rename); a failure only costs speed."""
    header = json.dumps(
        {
            "identity": identity,
            "rules": compiled.rules,
            "default_action": compiled.default_action,
            "profile_bytes": len(profile_text),
            "program_bytes": len(compiled.program),
        }
    ).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # in the store: root's alone
        with open(tmp, "wb") as f:
            f.write(header + b"\n" + profile_text + compiled.program)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
