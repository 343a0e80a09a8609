// A registry with the OCI referrers API, for the tests: go-containerregistry's pkg/registry
// (in memory, gone when the process ends) with WithReferrersSupport, which answers
// GET /v2/<name>/referrers/<digest>. Built and started by tests/support/registry.py
// (start_referrers_registry); the source comes from vagrant/provision.sh.
//
//	referrers-registry 127.0.0.1:0
//
// It listens on the address given (port 0: one the kernel picks) and writes to stderr, first
//
//	listening on 127.0.0.1:PORT
//
// then one line per request, once it has been handled:
//
//	request GET /v2/zran/debian/referrers/sha256:...?artifactType=... 200 312
//
// (method, the request's URI, the status sent, the bytes of body sent). The line is written
// before the handler returns. net/http sends a small reply (up to its 2 KiB buffer: a
// manifest, a listing, an error) only after that, so a client that has read one whole finds
// its line in the log; a blob's bytes go out as they are written, and may arrive first.
// pkg/registry's own log lines (an error's code and message) go to stderr too, after "ggcr:".
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/registry"
)

// recorder remembers the status and counts the body bytes of a reply.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK // (what net/http sends for a Write before any WriteHeader)
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: referrers-registry HOST:PORT")
		os.Exit(2)
	}
	out := log.New(os.Stderr, "", 0)
	inner := registry.New(
		registry.WithReferrersSupport(true),
		registry.Logger(log.New(os.Stderr, "ggcr: ", log.LstdFlags)),
	)
	handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &recorder{ResponseWriter: w}
		inner.ServeHTTP(rec, req)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		out.Printf("request %s %s %d %d", req.Method, req.URL.RequestURI(), rec.status, rec.bytes)
	})
	listener, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		out.Fatalf("listen: %v", err)
	}
	out.Printf("listening on %s", listener.Addr())
	out.Fatal(http.Serve(listener, handler))
}
