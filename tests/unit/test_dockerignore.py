""".dockerignore, as docker reads it (build.py ``read_dockerignore``, ``is_excluded``,
``may_reinclude``): one pattern a line, ``#`` comments, a leading ``/`` dropped, ``*`` and
``?`` within one path component, ``**`` any number of components (zero too), a pattern that
names a directory excludes all below it, ``!`` re-includes, and the last matching line wins.
The cases are the examples of docker's build reference, and their neighbours."""

from __future__ import annotations

import pytest

from minidocker.build import is_excluded, may_reinclude, read_dockerignore


def _patterns(tmp_path, text: str) -> list[tuple[bool, str]]:
    (tmp_path / ".dockerignore").write_text(text)
    return read_dockerignore(tmp_path)


@pytest.mark.parametrize(
    "lines, rel, excluded",
    [
        ("*.md", "a.md", True),
        ("*.md", "docs/a.md", False),  # no slash in the pattern: still only the context's root
        ("*/temp*", "somedir/temporary.txt", True),
        ("*/temp*", "somedir/sub/temporary.txt", False),
        ("*/*/temp*", "somedir/subdir/temporary.txt", True),
        ("temp?", "temp1", True),
        ("temp?", "temp12", False),
        ("**/*.go", "a/b/c/x.go", True),
        ("**/*.go", "x.go", True),  # ** matches zero directories too
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/y/c", False),
        ("docs", "docs/deep/file", True),  # a directory: everything under it
        ("/docs", "docs/file", True),  # a leading slash means the context's root
        ("./docs/", "docs/file", True),  # cleaned as filepath.Clean does
        ("# docs", "docs", False),  # a comment
        ("*.md\n!README.md", "README.md", False),
        ("*.md\n!README.md", "CHANGES.md", True),
        ("!README.md\n*.md", "README.md", True),  # the last matching line wins
        ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
        ("*.md\n!README*.md\nREADME-secret.md", "README-public.md", False),
        ("docs\n!docs/keep.md", "docs/keep.md", False),
        ("docs\n!docs/keep.md", "docs/other.md", True),
        ("**\n!src/**", "src/a/b.c", False),
        ("**\n!src/**", "Dockerfile.dev", True),
        ("  spaced.txt  ", "spaced.txt", True),  # surrounding white space is dropped
        ("file[0-9]", "file7", True),
        ("file[^0-9]", "file7", False),  # Go's negated class (fnmatch writes it [!...])
        ("file[^0-9]", "filex", True),
        ("star\\*", "star*", True),  # a backslash escapes, as in Go
        ("star\\*", "starry", False),
        ("*.md", "", False),  # the context itself is never excluded
    ],
)
def test_is_excluded(tmp_path, lines, rel, excluded):
    assert is_excluded(_patterns(tmp_path, lines + "\n"), rel) is excluded


@pytest.mark.parametrize(
    "lines, rel_dir, reachable",
    [
        ("docs\n!docs/keep.md", "docs", True),
        ("docs\n!other/keep.md", "docs", False),
        ("docs\n!**/keep.md", "docs/deep", True),
        ("docs\n!d*/k*", "docs", True),
        ("docs", "docs", False),  # no ! line at all
    ],
)
def test_an_excluded_directory_is_walked_only_when_a_bang_line_can_reach_into_it(tmp_path, lines, rel_dir, reachable):
    assert may_reinclude(_patterns(tmp_path, lines + "\n"), rel_dir) is reachable


def test_no_dockerignore_excludes_nothing(tmp_path):
    assert read_dockerignore(tmp_path) == []
    assert is_excluded([], "anything") is False
