// Package pgtest starts a throwaway PostgreSQL server for tests: initdb into
// a temporary directory and pg_ctl on a Unix socket there, no TCP port, so
// parallel test runs do not meet. It owns nothing but that server's life.
//
// The server binaries come from Debian's postgresql package
// (/usr/lib/postgresql/<version>/bin) or PATH. PostgreSQL refuses to run as
// root, so as root the server runs as the "postgres" user the package
// creates.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running throwaway PostgreSQL server.
type Server struct {
	Dir    string // data directory and socket directory's parent
	Socket string // directory holding the Unix socket
	bin    string
	cred   *syscall.Credential
}

// BinDir finds the directory of initdb and pg_ctl, or "".
func BinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
		return filepath.Dir(p)
	}
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// StartShared starts a server that the caller stops (for a server shared
// by a package's tests, started once and stopped in TestMain).
func StartShared() (*Server, error) { return start("") }

// Start starts a server for the test and stops it when the test ends. In
// CI (CI=true) a missing PostgreSQL fails the test; elsewhere too, with the
// command that installs it: a catalog engine that was not tested is not
// tested.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start(t.TempDir())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func start(tmp string) (*Server, error) {
	bin := BinDir()
	if bin == "" {
		return nil, fmt.Errorf("PostgreSQL server binaries not found; install them: apt-get install -y postgresql (or run make deps)")
	}
	// A short path: a Unix socket path is limited to 107 bytes.
	dir, err := os.MkdirTemp("", "pg")
	if err != nil {
		return nil, err
	}
	_ = tmp
	s := &Server{Dir: dir, Socket: filepath.Join(dir, "sock"), bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user (created by the postgresql package): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(s.Socket, 0o700); err != nil {
		return nil, err
	}
	if s.cred != nil {
		os.Chown(s.Socket, int(s.cred.Uid), int(s.cred.Gid))
	}
	data := filepath.Join(dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", "tapefs", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", s.Socket)
	if out, err := s.run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return s, nil
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.Dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

// URL returns a connection URL for database db (created if missing by
// CreateDB; "postgres" always exists).
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://tapefs@/%s?host=%s&sslmode=disable", db, s.Socket)
}

// CreateDB creates a fresh database and returns its URL.
func (s *Server) CreateDB(t testing.TB, name string) string {
	t.Helper()
	url, err := s.NewDB(name)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// NewDB creates a fresh database and returns its URL.
func (s *Server) NewDB(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %v\n%s", err, s.Log())
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %v", name, err)
	}
	return s.URL(name), nil
}

// Pause stops the server (fast shutdown: clients are disconnected) and
// Resume starts it again on the same data; tests of connection loss use
// them.
func (s *Server) Pause() error {
	out, err := s.run("pg_ctl", "-D", filepath.Join(s.Dir, "data"), "-m", "fast", "-w", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// Resume starts a paused server.
func (s *Server) Resume() error {
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", s.Socket)
	out, err := s.run("pg_ctl", "-D", filepath.Join(s.Dir, "data"), "-l", filepath.Join(s.Dir, "log"), "-o", opts, "-w", "-t", "60", "start")
	if err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s", err, out)
	}
	return nil
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	s.run("pg_ctl", "-D", filepath.Join(s.Dir, "data"), "-m", "immediate", "-w", "-t", "30", "stop")
	for i := 0; i < 50; i++ {
		if err := os.RemoveAll(s.Dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Log returns the server's log, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
	return strings.TrimSpace(string(b))
}

// CutOff stops database db accepting connections and ends the sessions
// whose application_name is app (a listener under test): the connection
// is lost and cannot come back until the returned function lets it (it
// is also called when the test ends).
func (s *Server) CutOff(t testing.TB, db, app string) (allow func()) {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) error {
		_, err := admin.Exec(ctx, sql, args...)
		return err
	}
	name := pgx.Identifier{db}.Sanitize()
	if err := exec("ALTER DATABASE " + name + " ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	if err := exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2", db, app); err != nil {
		t.Fatal(err)
	}
	done := false
	allow = func() {
		if done {
			return
		}
		done = true
		if err := exec("ALTER DATABASE " + name + " ALLOW_CONNECTIONS true"); err != nil {
			t.Error(err)
		}
		admin.Close(ctx)
	}
	t.Cleanup(allow)
	return allow
}
