package test

import (
	"fmt"
	"os"
	"sync"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/pgtest"
)

// The suite runs in a second mode with every daemon's catalog on
// PostgreSQL (TAPEFS_E2E_CATALOG=postgres; make test runs it): the same
// tests, the same assertions, one throwaway server for the run and one
// database per home, so a daemon restarted on its home finds its catalog.

var pgMode struct {
	sync.Mutex
	server *pgtest.Server
	urls   map[string]string // home -> database URL
}

// catalogOnPostgres reports whether this run puts catalogs on PostgreSQL.
func catalogOnPostgres() bool { return os.Getenv("TAPEFS_E2E_CATALOG") == "postgres" }

// startCatalogServer starts the run's PostgreSQL server in that mode.
func startCatalogServer() error {
	if !catalogOnPostgres() {
		return nil
	}
	s, err := pgtest.StartShared()
	if err != nil {
		return err
	}
	pgMode.server, pgMode.urls = s, map[string]string{}
	fmt.Fprintf(os.Stderr, "e2e: catalogs on PostgreSQL (socket %s)\n", s.Socket)
	return nil
}

func stopCatalogServer() {
	if pgMode.server != nil {
		pgMode.server.Stop()
	}
}

// catalogEnv is the environment that points a daemon of home at its
// catalog: nothing for the default (catalog.db in the home), TAPEFS_CATALOG
// in the PostgreSQL mode.
func catalogEnv(home string) []string {
	url := catalogSpec(home)
	if url == "" {
		return nil
	}
	return []string{"TAPEFS_CATALOG=" + url}
}

// catalogSpec is the catalog of home as catalog.OpenAt takes it.
func catalogSpec(home string) string {
	if !catalogOnPostgres() {
		return ""
	}
	pgMode.Lock()
	defer pgMode.Unlock()
	if url, ok := pgMode.urls[home]; ok {
		return url
	}
	url, err := pgMode.server.NewDB(fmt.Sprintf("home%d", len(pgMode.urls)+1))
	if err != nil {
		panic(err)
	}
	pgMode.urls[home] = url
	return url
}

// openCatalogEngine opens the raw key-value engine of a stopped daemon's
// catalog, for tests that plant records the daemon must cope with.
func openCatalogEngine(home string) (catalog.Engine, error) {
	if spec := catalogSpec(home); spec != "" {
		return catalog.OpenPostgresEngine(spec, catalog.PostgresOptions{})
	}
	return catalog.OpenBoltEngine(home + "/catalog.db")
}
