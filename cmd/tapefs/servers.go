package main

import (
	"errors"
	"net"
	"path/filepath"
	"sync"
	"time"

	apiserver "github.com/tapefs/tapefs/api/server"
	"github.com/tapefs/tapefs/web"
)

// controlSocket is the control API's socket in the home.
const controlSocket = "tapefs.sock"

// listenHTTP opens the status page's listener before anything else, so
// a refused address (off loopback without a token) stops the daemon before
// it touches the home. An address that cannot be bound is logged: the
// archive works without its page.
func (d *daemon) listenHTTP() (net.Listener, error) {
	if d.cfg.http == "" {
		return nil, nil
	}
	ln, err := web.Listen(d.cfg.http, d.cfg.httpToken)
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		d.log.Error().Err(err).Str("http", d.cfg.http).Msg("status page not served (choose another --http address, or --http '' for none)")
		return nil, nil
	}
	if err != nil {
		// Not an address (config checks its form) or one off loopback
		// without a token: the configuration's fault.
		return nil, usageError{err}
	}
	return ln, nil
}

// startServers starts the control API on HOME/tapefs.sock and the status
// page on ln (if any). The returned stop is safe to call twice.
func (d *daemon) startServers(h *archiveHome, mnt string, ln net.Listener, fuseOps func() map[string]uint64) (stop func(), err error) {
	control := apiserver.NewServer(h.engine.Surface(), d.log, mnt)
	sock := filepath.Join(d.cfg.home, controlSocket)
	if err := control.ServeUnix(sock); err != nil {
		return nil, err
	}
	d.log.Info().Str("socket", sock).Msg("control API listening")
	var page *web.Server
	if ln != nil {
		tag, err := web.FeedTag(d.cfg.home, time.Now())
		if err != nil {
			control.Close()
			return nil, err
		}
		page = web.New(h.engine.Surface(), web.Options{Log: d.log, Token: d.cfg.httpToken, FUSEOps: fuseOps, FeedTag: tag})
		go page.Serve(ln)
		d.log.Info().Str("http", "http://"+ln.Addr().String()+"/").Msg("status page listening")
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if page != nil {
				page.Close()
			}
			control.Close()
		})
	}, nil
}
