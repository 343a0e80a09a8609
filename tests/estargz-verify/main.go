// estargz-verify: checks a blob minidocker wrote with the reference eStargz reader
// (github.com/containerd/stargz-snapshotter/estargz, Debian's
// golang-github-containerd-stargz-snapshotter-dev), independently of our Python reader.
//
// Usage: estargz-verify BLOB TOC-DIGEST
//
// It opens the blob with estargz.Open (footer, then TOC), checks the TOC against the
// digest (VerifyTOC, which also requires a chunkDigest for every chunk), then reads every
// regular file chunk by chunk through the library's own reader and feeds each chunk to
// the verifier the TOC gave, and each whole file to its "digest". It prints one line:
//
//	ok files=N chunks=M landmark=NAME
//
// and exits 1 with the reason on the first failure. Built by tests/integration/test_estargz.py
// in GOPATH mode from /usr/share/gocode (offline).
package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/containerd/stargz-snapshotter/estargz"
	digest "github.com/opencontainers/go-digest"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "estargz-verify: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: estargz-verify BLOB TOC-DIGEST")
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fail("%v", err)
	}
	r, err := estargz.Open(io.NewSectionReader(f, 0, st.Size()))
	if err != nil {
		fail("open: %v", err)
	}
	want, err := digest.Parse(os.Args[2])
	if err != nil {
		fail("bad digest %q: %v", os.Args[2], err)
	}
	verifiers, err := r.VerifyTOC(want)
	if err != nil {
		fail("TOC: %v", err)
	}
	tocOffset, footerSize, err := estargz.OpenFooter(io.NewSectionReader(f, 0, st.Size()))
	if err != nil || footerSize != estargz.FooterSize {
		fail("footer: offset %d size %d: %v", tocOffset, footerSize, err)
	}

	// every name, walked from the root through the directory tree the TOC makes
	var names []string
	var walk func(dir string, e *estargz.TOCEntry)
	walk = func(dir string, e *estargz.TOCEntry) {
		e.ForeachChild(func(base string, child *estargz.TOCEntry) bool {
			name := base
			if dir != "" {
				name = dir + "/" + base
			}
			names = append(names, name)
			if child.Type == "dir" {
				walk(name, child)
			}
			return true
		})
	}
	root, ok := r.Lookup("")
	if !ok {
		fail("no root directory in the TOC")
	}
	walk("", root)
	sort.Strings(names)

	files, chunks := 0, 0
	landmark := ""
	seen := map[*estargz.TOCEntry]bool{}
	for _, walked := range names {
		e, _ := r.Lookup(walked)
		if walked == estargz.PrefetchLandmark || walked == estargz.NoPrefetchLandmark {
			landmark = walked
		}
		if e.Type != "reg" || e.Size == 0 || seen[e] {
			continue // (a hard link's Lookup gives its target: read that once, by its own name)
		}
		seen[e] = true
		name := e.Name
		sr, err := r.OpenFile(name)
		if err != nil {
			fail("open %s: %v", name, err)
		}
		whole := digest.Canonical.Digester()
		for off := int64(0); off < e.Size; {
			ce, ok := r.ChunkEntryForOffset(name, off)
			if !ok {
				fail("%s: no chunk at offset %d", name, off)
			}
			v, err := verifiers.Verifier(ce)
			if err != nil {
				fail("%s: %v", name, err)
			}
			buf := make([]byte, ce.ChunkSize)
			if _, err := sr.ReadAt(buf, ce.ChunkOffset); err != nil && err != io.EOF {
				fail("%s: reading chunk at %d: %v", name, ce.ChunkOffset, err)
			}
			v.Write(buf)
			if !v.Verified() {
				fail("%s: chunk at %d does not match its chunkDigest", name, ce.ChunkOffset)
			}
			whole.Hash().Write(buf)
			chunks++
			off = ce.ChunkOffset + ce.ChunkSize
		}
		if e.Digest != "" && whole.Digest().String() != e.Digest {
			fail("%s: content %s, TOC digest %s", name, whole.Digest(), e.Digest)
		}
		files++
	}
	fmt.Printf("ok files=%d chunks=%d landmark=%s toc_offset=%d\n", files, chunks, landmark, tocOffset)
}
