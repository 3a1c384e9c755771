package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/config"
)

// daemonConfig is everything the daemon is started with. It is built from,
// lowest to highest: the defaults, /etc/tapefs.conf, the user's
// $XDG_CONFIG_HOME/tapefs/tapefs.conf and ~/.tapefs.conf (or --config FILE
// instead), the environment (TAPEFS_HOME), the flags.
type daemonConfig struct {
	home           string
	catalog        string // "" (bbolt in home) or a postgres:// URL
	http           string
	settle         time.Duration
	cacheSize      int64
	timeScale      float64
	allowOther     bool
	logLevel       zerolog.Level
	drives         int
	cartridges     int
	cartridgeSize  int64
	flushAge       time.Duration
	recallLinger   time.Duration
	debugFUSE      bool
	httpToken      string
	tapeSpeed      int64
	aggregateSize  int64 // tape file size target of migration and repack (0: engine default, 4 GiB)
	maxFileSize    int64
	retention      time.Duration
	removeGrace    time.Duration
	prefetch       bool
	recallMD5      bool  // --recall-check md5: the md5 gates a recall's last bytes
	scrubRate      int64 // bytes/s; 0: no scrub
	scrubInterval  time.Duration
	verifyPeriod   time.Duration // tape scrub; 0: none
	repackBelow    float64       // repack cartridges whose live share falls below; 0: only by hand
	snapshotEvery  time.Duration // 0: no catalog snapshots
	snapshotDir    string        // "": HOME/snapshots
	recallWSDrives int
	copies         int // default copies policy of workspaces without one
	recallWSBytes  int64
	kernelCache    time.Duration // 0: fs.DefaultDirTimeout
	hashRate       int64         // bytes/s of background hashing; 0: unlimited
	hostID         string        // this daemon among several sharing a catalog; default the hostname
	lease          time.Duration // how long a host's heartbeat (and so its leases) lasts unrenewed
	library        string        // the virtual library's directory; "": HOME/library
	sharedLibrary  bool          // several hosts use library at once (needs a PostgreSQL catalog)
}

// defaultHome: see config.DefaultHome (root: /var/lib/tapefs; others:
// $XDG_DATA_HOME/tapefs or ~/.local/share/tapefs).
func defaultHome() string { return config.DefaultHome() }

func defaultDaemonConfig() daemonConfig {
	return daemonConfig{
		home:         defaultHome(),
		http:         "127.0.0.1:7070",
		settle:       30 * time.Second,
		timeScale:    1,
		logLevel:     zerolog.InfoLevel,
		drives:       2,
		cartridges:   20,
		scrubRate:    16 << 20,
		verifyPeriod: 180 * 24 * time.Hour,
		copies:       1,
		hostID:       defaultHostID(),
		lease:        30 * time.Second,
	}
}

// defaultHostID is the host name: one daemon per host is the usual case.
func defaultHostID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// configKeys are the keys of the [Daemon] section of a configuration file
// (config.Known, shared with the command line). The environment variables
// TAPEFS_<KEY> and the flags of the same names override them.
var configKeys = config.Known["daemon"]

// set sets one setting by its flag (and configuration key) name.
func (c *daemonConfig) set(key, value string) error {
	var err error
	switch key {
	case "home":
		if value == "" {
			return errors.New("empty directory")
		}
		c.home = value
	case "catalog":
		if value != "" && !catalog.IsDatabaseURL(value) {
			return fmt.Errorf("bad value for catalog: want a postgres://… URL, or nothing for the catalog in the home directory")
		}
		c.catalog = value
	case "http":
		c.http, err = value, checkListenAddress(value)
	case "settle":
		c.settle, err = parseDuration(value)
	case "cache-size":
		c.cacheSize, err = parseSize(value)
	case "time-scale":
		c.timeScale, err = strconv.ParseFloat(value, 64)
		if err == nil && (c.timeScale < 0 || math.IsNaN(c.timeScale) || math.IsInf(c.timeScale, 0)) {
			err = errors.New("must be a number ≥ 0 (0: no simulated waits, 1: real time)")
		}
	case "allow-other":
		c.allowOther, err = strconv.ParseBool(value)
	case "log-level":
		c.logLevel, err = zerolog.ParseLevel(strings.ToLower(value))
		if err == nil && value == "" {
			err = errors.New("empty level")
		}
	case "drives":
		c.drives, err = parseCount(value)
	case "cartridges":
		c.cartridges, err = parseCount(value)
	case "cartridge-size":
		c.cartridgeSize, err = parseSize(value)
	case "flush-age":
		c.flushAge, err = parseDuration(value)
	case "recall-linger":
		c.recallLinger, err = parseDuration(value)
	case "debug-fuse":
		c.debugFUSE, err = strconv.ParseBool(value)
	case "http-token":
		c.httpToken = value
	case "tape-speed":
		c.tapeSpeed, err = config.ParseSize(value)
	case "aggregate-size":
		c.aggregateSize, err = config.ParseSize(value)
	case "max-file-size":
		c.maxFileSize, err = config.ParseSize(value)
	case "retention":
		c.retention, err = parseDuration(value)
	case "remove-grace":
		c.removeGrace, err = parseDuration(value)
	case "prefetch":
		c.prefetch, err = strconv.ParseBool(value)
	case "recall-check":
		switch value {
		case "crc32c":
			c.recallMD5 = false
		case "md5":
			c.recallMD5 = true
		default:
			err = errors.New("must be crc32c or md5")
		}
	case "scrub-rate":
		c.scrubRate, err = config.ParseSize(value)
	case "scrub-interval":
		c.scrubInterval, err = parseDuration(value)
	case "verify-period":
		c.verifyPeriod, err = parseDuration(value)
	case "repack-below":
		c.repackBelow, err = strconv.ParseFloat(value, 64)
		if err == nil && (c.repackBelow < 0 || c.repackBelow >= 1 || c.repackBelow != c.repackBelow) {
			err = errors.New("must be a share from 0 (never) up to, not including, 1, e.g. 0.5")
		}
	case "snapshot-every":
		c.snapshotEvery, err = parseDuration(value)
	case "snapshot-dir":
		c.snapshotDir = value
	case "recall-workspace-drives":
		c.recallWSDrives, err = strconv.Atoi(value)
		if err == nil && c.recallWSDrives < 0 {
			err = errors.New("must be a number ≥ 0 (0: no limit)")
		}
	case "copies":
		c.copies, err = strconv.Atoi(value)
		if err == nil && (c.copies < 1 || c.copies > catalog.MaxCopies) {
			err = fmt.Errorf("must be 1 to %d", catalog.MaxCopies)
		}
	case "recall-workspace-bytes":
		c.recallWSBytes, err = config.ParseSize(value)
	case "kernel-cache":
		c.kernelCache, err = parseDuration(value)
	case "hash-rate":
		c.hashRate, err = config.ParseSize(value)
	case "host-id":
		if value == "" || strings.ContainsAny(value, "\x00/ \t\n") || len(value) > 64 {
			err = errors.New("want 1 to 64 characters, no '/', space or NUL")
		}
		c.hostID = value
	case "lease":
		c.lease, err = parseDuration(value)
		if err == nil && c.lease < 100*time.Millisecond {
			err = errors.New("must be at least 100ms")
		}
	case "library":
		if value == "" {
			return errors.New("empty directory")
		}
		c.library = value
	case "shared-library":
		c.sharedLibrary, err = strconv.ParseBool(value)
	default:
		return fmt.Errorf("unknown setting %q", key)
	}
	if err != nil {
		return fmt.Errorf("bad value %q for %s: %w", value, key, unwrapNum(err))
	}
	return nil
}

// unwrapNum drops strconv's repetition of the input from its errors.
func unwrapNum(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

// checkListenAddress checks the form of a --http address (HOST:PORT, a
// port number or service name; "" for none), so that a typo is a
// configuration error rather than a page that is silently not served.
func checkListenAddress(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w; give HOST:PORT, e.g. 127.0.0.1:7070, or '' for no status page", unwrapAddr(err))
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q: %w", port, unwrapAddr(err))
	}
	return nil
}

// unwrapAddr drops net's repetition of the input from its errors.
func unwrapAddr(err error) error {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return errors.New(ae.Err)
	}
	return err
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = errors.New("must not be negative")
	}
	return d, err
}

func parseCount(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err == nil && n < 1 {
		err = errors.New("must be at least 1")
	}
	return n, err
}

func parseSize(s string) (int64, error) { return config.ParseSize(s) }

// configFile reads the [Daemon] section of an INI file into c. Other
// sections belong to the command line and are skipped. It returns
// warnings (unknown keys) to log once logging is set up, and fails on a
// malformed line or a bad value, naming the file and line.
func (c *daemonConfig) configFile(path string) (warnings []string, err error) {
	entries, err := config.ReadINI(path)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Section != "daemon" {
			continue // [Batch], [Directory]: the command line's
		}
		if !slices.Contains(configKeys, e.Key) {
			warnings = append(warnings, fmt.Sprintf("%s: unknown key %q in [Daemon] (ignored; known keys: %s)",
				e.Where(), e.Key, strings.Join(configKeys, ", ")))
			continue
		}
		if err := c.set(e.Key, e.Value); err != nil {
			return warnings, fmt.Errorf("%s: %w", e.Where(), err)
		}
	}
	return warnings, nil
}
