package main

import (
	"errors"
	"net"
	"path/filepath"
	"sync"

	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/web"
)

// controlSocket is the control API's socket in the home.
const controlSocket = "tapefs.sock"

// startServers starts the control API on HOME/tapefs.sock and, with
// --http, the status page. The returned stop is safe to call twice.
func (d *daemon) startServers(h *archiveHome, mnt string, fuseOps func() map[string]uint64) (stop func(), err error) {
	control := api.NewServer(h.engine, d.log, mnt)
	sock := filepath.Join(d.cfg.home, controlSocket)
	if err := control.ServeUnix(sock); err != nil {
		return nil, err
	}
	d.log.Info().Str("socket", sock).Msg("control API listening")
	var page *web.Server
	if d.cfg.http != "" {
		ln, err := web.Listen(d.cfg.http, d.cfg.httpToken)
		var opErr *net.OpError
		switch {
		case errors.As(err, &opErr):
			// The archive works without its page: say so and go on.
			d.log.Error().Err(err).Str("http", d.cfg.http).Msg("status page not served (choose another --http address, or --http '' for none)")
		case err != nil:
			control.Close()
			return nil, err
		default:
			page = web.New(h.engine, web.Options{Log: d.log, Token: d.cfg.httpToken, FUSEOps: fuseOps})
			go page.Serve(ln)
			d.log.Info().Str("http", "http://"+ln.Addr().String()+"/").Msg("status page listening")
		}
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
