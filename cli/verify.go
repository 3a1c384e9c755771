package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/config"
)

var verifyCommand = Command{
	Name:    "verify",
	Summary: "check cached copies against their md5 now (exit 1 if any is damaged)",
	Usage:   "[--cache] [-b ID] [-w WS] [-F text|json]",
	Help: `Re-reads the files held in the daemon's disk cache and compares each with the
md5 recorded when it was sealed, at full speed (the daemon's background scrub
does the same slowly, at --scrub-rate). Without -b or -w it checks every
workspace you may read.

A damaged copy of a file that is on tape is dropped and recalled from tape.
A damaged copy of a file not yet on tape is the only copy: it is kept, its
batch is FAILED naming the file, and reading it through the mount gives EIO;
put that file again from its source.

Exit status: 0 when every copy checked is good, 1 when one or more were
damaged (each is listed) or the check could not be made.

Examples:
  tapefs verify --cache
  tapefs verify --cache -b 507
  tapefs verify -w gws_run3 -F json
`,
	setup: func(fs *pflag.FlagSet) func(env *Env, args []string) int {
		fs.Bool("cache", true, "check the disk cache (the only kind of check there is for now)")
		batch := fs.Uint64P("batch", "b", 0, "only the files of batch `ID`")
		ws := fs.StringP("workspace", "w", "", "only the files of workspace `WS`")
		format := fs.StringP("format", "F", "text", "output format: text or json")
		return func(env *Env, args []string) int {
			if len(args) > 0 {
				return env.usage("verify", "unexpected argument %q", args[0])
			}
			if c, _ := fs.GetBool("cache"); !c {
				return env.usage("verify", "--cache=false: there is nothing else to verify yet")
			}
			if *format != "text" && *format != "json" {
				return env.usage("verify", "-F %q: use text or json", *format)
			}
			ctx, cancel := interruptible()
			defer cancel()
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
				fmt.Fprintf(env.Stdout, "checked %d cached files (%s) in %s", rep.Objects, config.FormatSize(rep.Bytes), time.Since(t0).Round(time.Millisecond))
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
