package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// daemonConfig is everything the daemon is started with. It is built from,
// lowest to highest: the defaults, /etc/tapefs.conf, ~/.tapefs.conf (or
// --config FILE instead), the environment (TAPEFS_HOME), the flags.
type daemonConfig struct {
	home          string
	http          string
	settle        time.Duration
	cacheSize     int64
	timeScale     float64
	allowOther    bool
	logLevel      zerolog.Level
	drives        int
	cartridges    int
	cartridgeSize int64
	flushAge      time.Duration
	recallLinger  time.Duration
	debugFUSE     bool
}

func defaultHome() string {
	if os.Geteuid() == 0 {
		return "/var/lib/tapefs"
	}
	if dir, err := os.UserHomeDir(); err == nil {
		return filepath.Join(dir, ".local", "share", "tapefs")
	}
	return "tapefs"
}

func defaultDaemonConfig() daemonConfig {
	return daemonConfig{
		home:       defaultHome(),
		http:       "127.0.0.1:7070",
		settle:     30 * time.Second,
		timeScale:  1,
		logLevel:   zerolog.InfoLevel,
		drives:     2,
		cartridges: 20,
	}
}

// configKeys are the keys of the [Daemon] section of a configuration file.
// The flags of the same names override them.
var configKeys = []string{"home", "http", "settle", "cache-size", "time-scale", "allow-other", "log-level"}

// set sets one setting by its flag (and configuration key) name.
func (c *daemonConfig) set(key, value string) error {
	var err error
	switch key {
	case "home":
		if value == "" {
			return errors.New("empty directory")
		}
		c.home = value
	case "http":
		c.http = value
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

// parseSize reads a size in bytes: a number with an optional binary unit,
// K, M, G, T or P (also KB, KiB, ...): "500M", "10G", "1.5T", "0".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "IB"), "B")
	mult := map[string]float64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q (use K, M, G, T or P)", t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || num == "" {
		return 0, errors.New("not a size (examples: 0, 500M, 10G, 1.5T)")
	}
	b := v * mult
	if b > math.MaxInt64 {
		return 0, errors.New("too large")
	}
	return int64(b), nil
}

// configFile reads the [Daemon] section of an INI file into c. Other
// sections belong to the command line and are skipped. It returns
// warnings (unknown keys) to log once logging is set up, and fails on a
// malformed line or a bad value, naming the file and line.
func (c *daemonConfig) configFile(path string) (warnings []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	section := ""
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' || text[0] == ';' {
			continue
		}
		if strings.HasPrefix(text, "[") {
			if !strings.HasSuffix(text, "]") {
				return warnings, fmt.Errorf("%s:%d: malformed section header %q", path, line, text)
			}
			section = strings.ToLower(strings.TrimSpace(text[1 : len(text)-1]))
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return warnings, fmt.Errorf("%s:%d: expected KEY = VALUE, got %q", path, line, text)
		}
		if section != "daemon" {
			continue
		}
		key = strings.ToLower(strings.TrimSpace(key))
		value = strings.Trim(strings.TrimSpace(value), `"`)
		if !slices.Contains(configKeys, key) {
			warnings = append(warnings, fmt.Sprintf("%s:%d: unknown key %q in [Daemon] (ignored; known keys: %s)",
				path, line, key, strings.Join(configKeys, ", ")))
			continue
		}
		if err := c.set(key, value); err != nil {
			return warnings, fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return warnings, fmt.Errorf("%s: %w", path, err)
	}
	return warnings, nil
}
