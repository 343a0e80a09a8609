"""Image references: ``ubuntu`` -> ``docker.io/library/ubuntu:latest``.

A reference names a repository in a registry and, optionally, a tag or a digest::

    [domain[:port]/]path[:tag][@digest]

The grammar is the one docker uses (distribution's ``reference`` package):

* ``domain`` is the first ``/``-separated part if it contains a ``.`` or a ``:``, or is
  ``localhost``; otherwise the domain is ``docker.io``.
* ``path`` components are lowercase letters and digits, joined by ``.``, ``_``, ``__`` or
  dashes. On docker.io a one-component path gets the ``library/`` prefix.
* a tag is up to 128 of ``[A-Za-z0-9_.-]``, not starting with ``.`` or ``-``.
* a digest is ``algorithm:hex`` (we accept ``sha256`` with 64 hex digits).
* with neither tag nor digest, the tag is ``latest``.

Try it: ``python -c "from minidocker.image.reference import parse; print(parse('ubuntu'))"``.
"""

from __future__ import annotations

import re

from minidocker.errors import InvalidReference
from minidocker.record import record

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = {"index.docker.io", "registry-1.docker.io"}
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
NAME_MAX = 255


@record(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The fully qualified repository name: ``docker.io/library/ubuntu``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as docker shows it: ``ubuntu``, ``user/app``, ``host:5000/app``."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            return path[len(OFFICIAL_PREFIX) :] if path.startswith(OFFICIAL_PREFIX) else path
        return self.name

    @property
    def reference(self) -> str:
        """What the registry API calls ``<reference>``: the digest if any, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, None, digest)

    def __str__(self) -> str:
        return self._with_tag_and_digest(self.name)

    def familiar(self) -> str:
        return self._with_tag_and_digest(self.familiar_name)

    def _with_tag_and_digest(self, name: str) -> str:
        return name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def split_domain(name: str) -> tuple[str, str]:
    """Split ``host:5000/a/b`` into ``("host:5000", "a/b")``; docker.io when no domain."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain in LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse(text: str, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference; raise ``InvalidReference`` with the reason."""
    original = text
    if not text or text != text.strip():
        raise InvalidReference(f"invalid reference format: {original!r} is empty or has spaces")
    digest = None
    if "@" in text:
        text, _, digest = text.partition("@")
        if not _DIGEST_RE.match(digest):
            raise InvalidReference(
                f"invalid reference format: {original!r} has a malformed digest",
                hint="a digest is sha256: followed by 64 lowercase hex digits",
            )
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:  # a ':' after the last '/' starts a tag, not a port
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"invalid reference format: {original!r} has a malformed tag")
    if len(text) > NAME_MAX:
        raise InvalidReference(f"invalid reference format: repository name longer than {NAME_MAX}")
    domain, path = split_domain(text)
    if not _DOMAIN_RE.match(domain):
        raise InvalidReference(f"invalid reference format: {original!r} has a malformed registry host")
    if not _PATH_RE.match(path):
        reason = "must be lowercase" if path != path.lower() else "has invalid characters"
        raise InvalidReference(
            f"invalid reference format: repository name in {original!r} {reason}",
            hint="names are lowercase letters, digits and separators (. _ __ -), e.g. ubuntu:22.04",
        )
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)
