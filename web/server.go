package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	apiserver "github.com/tapefs/tapefs/api/server"
	"github.com/tapefs/tapefs/archive"
)

// Options configure the server. Zero values are fine.
type Options struct {
	Log zerolog.Logger
	// Token, when set, must come with every request: "Authorization:
	// Bearer TOKEN" or "?token=TOKEN".
	Token string
	// FUSEOps returns the mount's operation counts by operation name
	// (nil: no mount, no FUSE metrics).
	FUSEOps func() map[string]uint64
	// Now is the clock of the pages (relative times, rate samples); nil:
	// time.Now.
	Now func() time.Time
	// FeedTag is the installation's tag: URI prefix of feed and entry
	// IDs (FeedTag in feedtag.go); "": one minted for this run only.
	FeedTag string
}

// Server is the read-only HTTP face of the daemon.
type Server struct {
	e       archive.Surface
	opts    Options
	log     zerolog.Logger
	now     func() time.Time
	handler http.Handler
	pages   *templates
	agg     *aggregator
	rates   *rateSampler
	history *history
	reg     *prometheus.Registry
	// scanBudget is how many batch records a filtered list reads at most.
	scanBudget int
	feedTag    string

	mu   sync.Mutex
	srvs []*http.Server
	stop chan struct{}
	done sync.WaitGroup
	shut bool
}

// New builds the server over a running engine. It starts the small
// sampler that measures drive rates; Close stops it.
func New(e archive.Surface, opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		e:     e,
		opts:  opts,
		log:   opts.Log,
		now:   opts.Now,
		pages: mustTemplates(),
		stop:  make(chan struct{}),

		scanBudget: scanBudget,
		feedTag:    opts.FeedTag,
	}
	if s.feedTag == "" {
		host, _ := os.Hostname()
		s.feedTag = MintFeedTag(host, opts.Now())
	}
	s.agg = newAggregator(e, opts.Now)
	s.rates = newRateSampler(func() []archive.DriveInfo { return e.Library().Drives }, opts.Now)
	s.history = newHistory(e.Stats, opts.Now, historyStep, historySpan)
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(&collector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.overview)
	mux.HandleFunc("GET /batches", s.batches)
	mux.HandleFunc("GET /batches/{id}", s.batch)
	mux.HandleFunc("GET /feed.atom", s.feed)
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.Handle("GET /api/", s.apiHandler())
	mux.HandleFunc("/", s.notFound)
	s.handler = s.guard(mux)

	s.done.Add(3)
	go func() {
		defer s.done.Done()
		s.rates.run(s.stop, time.Second)
	}()
	go func() {
		defer s.done.Done()
		s.history.run(s.stop)
	}()
	go func() {
		// The first count reads every batch: do it now, not in the
		// first request.
		defer s.done.Done()
		if _, err := s.agg.get(); err != nil {
			s.log.Error().Err(err).Msg("status page: counting batches failed")
		}
	}()
	return s
}

// Handler serves everything: pages, feed, /api/, /metrics. It enforces the
// method (GET, HEAD) and the token itself.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen opens the TCP listener for addr. A listener that is not on a
// loopback address shows the whole archive to the network, so it is
// refused without a token.
func Listen(addr, token string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w (give HOST:PORT, e.g. 127.0.0.1:7070)", addr, err)
	}
	refuse := fmt.Errorf("--http %s is not a loopback address: set --http-token so every request must carry it", addr)
	if token == "" && !loopbackHost(host) {
		return nil, refuse
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w", addr, err)
	}
	// What was bound is what counts (a name may resolve differently now).
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && token == "" && !ta.IP.IsLoopback() {
		ln.Close()
		return nil, refuse
	}
	return ln, nil
}

// loopbackHost reports whether every address host names is a loopback one.
// "" (every interface) is not.
func loopbackHost(host string) bool {
	if host == "" {
		return false
	}
	if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); ip != nil {
		return ip.IsLoopback()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false
		}
	}
	return true
}

// Serve answers requests on ln until Close; it returns nil after Close.
// Run it in its own goroutine.
func (s *Server) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ConnContext:       s.connContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// net/http's own complaints (bad TLS hellos, broken clients) go to
		// the daemon's log, not to stderr.
		ErrorLog: log.New(s.log.With().Str("listener", "http").Logger(), "", 0),
	}
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.srvs = append(s.srvs, srv)
	s.mu.Unlock()
	s.log.Info().Str("addr", ln.Addr().String()).Bool("token", s.opts.Token != "").Msg("status page listening")
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving (requests in flight get a few seconds) and stops the
// rate sampler.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return nil
	}
	s.shut = true
	srvs := s.srvs
	s.mu.Unlock()
	close(s.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range srvs {
		errs = append(errs, srv.Shutdown(ctx))
	}
	s.done.Wait()
	return errors.Join(errs...)
}

// guard is the outer layer of every request: security headers, GET/HEAD
// only, and the token.
func (s *Server) guard(next http.Handler) http.Handler {
	var want [32]byte
	if s.opts.Token != "" {
		want = sha256.Sum256([]byte(s.opts.Token))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "this listener is read-only: only GET and HEAD are served (changes go through the tapefs command line)", http.StatusMethodNotAllowed)
			return
		}
		if s.opts.Token != "" {
			got, ok := requestToken(r)
			// Hashing first makes the comparison constant-time in the
			// length of the token too.
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				h.Set("WWW-Authenticate", `Bearer realm="tapefs"`)
				http.Error(w, "this tapefs listener needs its token: send \"Authorization: Bearer TOKEN\" or add ?token=TOKEN", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// requestToken is the token a request carries, from the Authorization
// header or the token query parameter.
func requestToken(r *http.Request) (string, bool) {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, ok := strings.Cut(a, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok), true
		}
		return "", false
	}
	q := r.URL.Query()
	if _, ok := q["token"]; ok {
		return q.Get("token"), true
	}
	return "", false
}

// linkToken is the token that links of a page must carry: the one the
// request came with in its query (a browser or feed reader keeps no
// header), none otherwise.
func (s *Server) linkToken(r *http.Request) string {
	if s.opts.Token == "" || r.Header.Get("Authorization") != "" {
		return ""
	}
	return r.URL.Query().Get("token")
}

// apiHandler mounts the control API under /api as the connection's caller
// (peer.go): it sees what that user may see, and changes nothing (the
// listener serves GET and HEAD only).
func (s *Server) apiHandler() http.Handler {
	ctl := apiserver.NewServer(s.e, s.log, "").Handler()
	return http.StripPrefix("/api", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/files/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintln(w, `{"error":"file contents are served only on the control socket (tapefs get), not on the status listener"}`)
			return
		}
		ctl.ServeHTTP(w, r.WithContext(apiserver.WithCaller(r.Context(), s.caller(r))))
	}))
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.renderError(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
}
