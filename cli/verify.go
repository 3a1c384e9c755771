package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/tapefs/tapefs/internal/human"
	"time"

	"github.com/spf13/pflag"
	"github.com/tapefs/tapefs/api"
)

var verifyCommand = Command{
	Name:    "verify",
	Summary: "read tape copies (or the cache) back and check every checksum now (exit 1 on any damage)",
	Usage:   "-b ID | --cartridge VOLSER | -w WS [--md5] | --cache [-b ID] [-w WS] [-F text|json]",
	Help: `Without --cache: reads the copies on tape of one batch (-b), of one
workspace (-w) or of everything on one cartridge (--cartridge, root only)
and compares each with the checksum recorded when it was sealed: the
CRC32C written on tape with the md5 (the check LTO drives use themselves;
it runs at memory speed, so a cartridge is read back at drive speed), or
the md5 for files sealed before tapefs recorded CRC32Cs. --md5 compares
every md5 as well (slower: md5 runs at under 1 GB/s per core). The bytes are
streamed and hashed, never put into the cache; each cartridge is mounted
once and read in tape order. Reading back a whole cartridge records the
time in "tapefs library status". The daemon also does this by itself
(--verify-period), one cartridge at a time when no recall or migration
waits.

With --cache: re-reads the files held in the daemon's disk cache instead,
at full speed (the daemon's background scrub does the same slowly, at
--scrub-rate). Without -b or -w it checks every workspace you may read.
A damaged cached copy of a file that is on tape is dropped and recalled
from tape. A damaged copy of a file not yet on tape is the only copy: it
is kept, its batch is FAILED naming the file, and reading it through the
mount gives EIO; put that file again from its source.

Every bad copy is listed with its path, batch, cartridge and tape file,
and the checksums sealed and read.

Exit status: 0 when every copy checked is good, 1 when one or more were
damaged (each is listed) or the check could not be made.

Examples:
  tapefs verify -b 507
  tapefs verify --cartridge TF0001
  tapefs verify --cartridge TF0001 --md5
  tapefs verify -w gws_run3 -F json
  tapefs verify --cache
  tapefs verify --cache -b 507
`,
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		cacheOnly := fs.Bool("cache", false, "check the copies in the disk cache instead of those on tape")
		batch := fs.Uint64P("batch", "b", 0, "only the files of batch `ID`")
		ws := fs.StringP("workspace", "w", "", "only the files of workspace `WS`")
		volser := fs.String("cartridge", "", "every copy on cartridge `VOLSER` (tape only; root)")
		format := fs.StringP("format", "F", "text", "output format: text or json")
		withMD5 := fs.Bool("md5", false, "tape: compare every copy's md5 too, not only its CRC32C (slower: md5 runs at under 1 GB/s per core)")
		return func(env *Env, args []string) int {
			if len(args) > 0 {
				return env.usage("verify", "unexpected argument %q", args[0])
			}
			if *format != "text" && *format != "json" {
				return env.usage("verify", "-F %q: use text or json", *format)
			}
			tape := !*cacheOnly
			if tape && *batch == 0 && *ws == "" && *volser == "" {
				return env.usage("verify", "name what to read back from tape: -b ID, --cartridge VOLSER or -w WS (or --cache for the disk cache)")
			}
			if *cacheOnly && *volser != "" {
				return env.usage("verify", "--cartridge reads tape; it does not go with --cache")
			}
			if *cacheOnly && *withMD5 {
				return env.usage("verify", "--md5 is for tape copies; --cache always compares md5s")
			}
			ctx, cancel := interruptible()
			defer cancel()
			if tape {
				return verifyTape(ctx, env, api.TapeVerifyRequest{Batch: *batch, VOLSER: *volser, Workspace: *ws, MD5: *withMD5}, *format)
			}
			t0 := time.Now()
			rep, err := env.Client.VerifyCache(ctx, api.VerifyRequest{Batch: *batch, Workspace: *ws})
			if err != nil {
				return env.fail("verify", err)
			}
			if *format == "json" {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return env.fail("verify", err)
				}
			} else {
				fmt.Fprintf(env.Stdout, "checked %d cached files (%s) in %s", rep.Objects, human.Size(rep.Bytes), time.Since(t0).Round(time.Millisecond))
				if rep.Skipped > 0 {
					fmt.Fprintf(env.Stdout, "; %d being recalled, not checked", rep.Skipped)
				}
				fmt.Fprintf(env.Stdout, "; %d damaged\n", len(rep.Damaged))
				for _, d := range rep.Damaged {
					fmt.Fprintf(env.Stdout, "DAMAGED batch %d (%s) %q: md5 sealed %s, found %s: %s\n",
						d.Batch, d.Workspace, d.Path, d.Want, d.Got, d.Action)
				}
			}
			if len(rep.Damaged) > 0 {
				fmt.Fprintf(env.Stderr, "tapefs verify: %d damaged cached file(s); see the lines above and the daemon's events\n", len(rep.Damaged))
				return ExitFailed
			}
			return ExitOK
		}
	},
}

// verifyTape asks the daemon to read tape copies back and prints what it
// found.
func verifyTape(ctx context.Context, env *Env, req api.TapeVerifyRequest, format string) int {
	t0 := time.Now()
	stop := func(int, int64) {}
	if env.TTY {
		req.Progress = randomToken()
		stop = env.showWork(ctx, req.Progress)
	}
	rep, err := env.Client.VerifyTape(ctx, req)
	if err != nil {
		stop(-1, 0)
		return env.fail("verify", err)
	}
	stop(rep.Files, rep.Bytes)
	took := time.Since(t0)
	if format == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return env.fail("verify", err)
		}
	} else {
		rate := ""
		if s := took.Seconds(); s > 0 && rep.Bytes > 0 {
			rate = fmt.Sprintf(", %s/s", human.Size(int64(float64(rep.Bytes)/s)))
		}
		fmt.Fprintf(env.Stdout, "read back %d tape copies (%s) from %d cartridge(s) %v in %s%s; %d damaged\n",
			rep.Files, human.Size(rep.Bytes), len(rep.Cartridges), rep.Cartridges, took.Round(time.Millisecond), rate, len(rep.Damaged))
		for _, d := range rep.Damaged {
			what := fmt.Sprintf("md5 sealed %s, read %s", d.Want, d.Got)
			if d.Got == "" || d.Got == d.Want {
				what = fmt.Sprintf("md5 sealed %s; CRC32C sealed %s, read %s", d.Want, d.WantCRC, d.GotCRC)
			}
			if d.Error != "" {
				what = fmt.Sprintf("md5 sealed %s, unreadable: %s", d.Want, d.Error)
			}
			fmt.Fprintf(env.Stdout, "DAMAGED batch %d (%s) %q on cartridge %s tape file %d: %s\n",
				d.Batch, d.Workspace, d.Path, d.VOLSER, d.TapeFile, what)
		}
	}
	if len(rep.Damaged) > 0 {
		fmt.Fprintf(env.Stderr, "tapefs verify: %d damaged tape copies; see the lines above and the daemon's events\n", len(rep.Damaged))
		return ExitFailed
	}
	return ExitOK
}

// lastVerified is the VERIFIED column of "tapefs library status": when
// the cartridge was last read back whole, and how many copies were bad.
func lastVerified(c api.Cartridge) string {
	if c.LastVerified == nil {
		return "never"
	}
	s := c.LastVerified.Local().Format("2006-01-02 15:04")
	if c.VerifyDamaged > 0 {
		s += fmt.Sprintf(" (%d damaged)", c.VerifyDamaged)
	}
	return s
}
