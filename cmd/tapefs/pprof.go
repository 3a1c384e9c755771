package main

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"

	"github.com/rs/zerolog"
)

// pprofEnv names the address (host:port) on which a daemon serves Go's
// profiles (/debug/pprof/) when set. It is for measuring the daemon (the
// benchmarks in test/ take CPU and heap profiles from it), not for
// production: the profiles are served without the status page's token, so
// the variable should name a loopback address.
const pprofEnv = "TAPEFS_PPROF"

// startPprof serves the profiles if TAPEFS_PPROF is set; a listener that
// cannot be opened is logged and otherwise ignored (profiling is never a
// reason not to serve the archive).
func startPprof(log zerolog.Logger) {
	addr := os.Getenv(pprofEnv)
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn().Err(err).Str("addr", addr).Msg("profiles not served")
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info().Str("pprof", "http://"+ln.Addr().String()+"/debug/pprof/").Msg("serving Go profiles")
	go func() { _ = http.Serve(ln, mux) }()
}
